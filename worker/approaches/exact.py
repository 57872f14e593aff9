"""exact: closed-form least squares — the optimum the gradient approaches head for."""

import numpy as np

from models import FitRequest
from worker.fit import Fit, Problem, Report, named, polynomial_formula


def least_squares(x: np.ndarray, y: np.ndarray, degree: int) -> tuple[np.ndarray, float]:
    """Coefficients (a, b, c, …) minimising Σ(y_pred − y)², and that minimum."""
    powers = np.stack([x**k for k in range(degree + 1)], axis=1)
    w, *_ = np.linalg.lstsq(powers, y, rcond=None)
    residual = powers @ w - y
    return w, float(residual @ residual)


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    w, loss = least_squares(problem.x, problem.y, request.degree)
    coefficients = named(w)
    return Fit(coefficients, {}, polynomial_formula(coefficients), loss, 0)
