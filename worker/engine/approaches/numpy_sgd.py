"""numpy: y = a + b x + c x² + d x³ (degree n) with NumPy and hand-written gradients."""

import numpy as np

from polyfit.models import FitRequest
from polyfit.worker.engine.fit import Fit, Problem, Report, named, polynomial_fit


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    powers, y = problem.weighted(request.degree)  # columns 1, x, x², x³ (and y) over σ
    rng = np.random.default_rng(request.seed)
    w = rng.standard_normal(request.degree + 1).astype(powers.dtype)
    initial = w.copy()
    report.coefficients = lambda: named(w)
    gradient_scale = 2.0 * request.learning_rate

    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported, not warned
        for t in range(request.steps):
            residual = powers @ w - y  # y_pred - y
            if report.due(t):
                report(t, residual @ residual)  # sum of squared errors
            # grad_a = Σ 2r, grad_b = Σ 2r·x, … — all four at once as 2·Pᵀr
            w -= gradient_scale * (residual @ powers)
        residual = powers @ w - y
        final_loss = float(residual @ residual)
    return polynomial_fit(w, initial, final_loss, request.steps)
