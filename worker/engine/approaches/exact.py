"""exact: closed-form least squares — the optimum the gradient approaches head for."""

from polyfit.models import FitRequest
from polyfit.models.curves import least_squares
from polyfit.worker.engine.fit import Fit, Problem, Report, polynomial_fit


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    w, loss = least_squares(problem.x, problem.y, request.degree)
    return polynomial_fit(w, [], loss, 0)
