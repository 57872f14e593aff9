"""autograd: the polynomial on tensors, gradients from autograd, w -= learning_rate · grad."""

import torch

from polyfit.models import FitRequest
from polyfit.worker.engine.descent import descend
from polyfit.worker.engine.fit import (
    Fit,
    Problem,
    Report,
    initial_normal,
    named,
    polynomial_fit,
    sse,
)


def loss_of(params: tuple[torch.Tensor], powers: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    (w,) = params
    return sse(powers @ w, y)  # (y_pred - y).pow(2).sum(), as one fused op


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    powers, y = problem.weighted(request.degree)  # columns 1, x, x², x³ (and y) over σ
    w = initial_normal(request, request.degree + 1, problem.device)
    initial = w.clone()
    report.coefficients = lambda: named(w.detach().cpu())

    descend(loss_of, [w], (powers, y), request.learning_rate, request.steps, report,
            compiled=problem.compiled)

    with torch.no_grad():
        final_loss = loss_of((w,), powers, y).item()
    return polynomial_fit(w.detach().cpu(), initial.cpu(), final_loss, request.steps)
