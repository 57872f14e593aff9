"""exact: closed-form least squares — the optimum the gradient approaches head for."""

from models import FitRequest
from models.curves import least_squares
from worker.fit import Fit, Problem, Report, named, polynomial_formula


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    w, loss = least_squares(problem.x, problem.y, request.degree)
    coefficients = named(w)
    return Fit(coefficients, {}, polynomial_formula(coefficients), loss, 0)
