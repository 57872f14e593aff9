"""tensor: the numpy approach on torch tensors — hand-written gradients, any device."""

import torch

from polyfit.models import FitRequest
from polyfit.worker.engine.fit import Fit, Problem, Report, initial_normal, named, polynomial_fit


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    powers, y = problem.weighted(request.degree)  # columns 1, x, x², x³ (and y) over σ
    powers_t = powers.T.contiguous()
    w = initial_normal(request, request.degree + 1, problem.device)
    initial = w.clone()
    report.coefficients = lambda: named(w.cpu())

    for t in range(request.steps):
        residual = torch.addmv(y, powers, w, beta=-1)  # y_pred - y
        if report.due(t):
            report(t, residual.dot(residual))  # sum of squared errors
        # grad = 2·Pᵀr; w -= learning_rate * grad, in one fused call
        w.addmv_(powers_t, residual, alpha=-2.0 * request.learning_rate)

    residual = torch.addmv(y, powers, w, beta=-1)
    return polynomial_fit(w.cpu(), initial.cpu(), residual.dot(residual).item(), request.steps)
