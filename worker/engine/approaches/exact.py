"""exact: closed-form least squares — the optimum the gradient approaches head for, solved as
polyfit.models.least_squares certifies it (weighted by 1/σ² when the data has σ)."""

from polyfit.models import FitRequest
from polyfit.models.least_squares import fit_polynomial
from polyfit.worker.engine.fit import Fit, Problem, Report, polynomial_fit


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    sigma = request.data.sigma if request.data is not None else None
    optimum = fit_polynomial(*problem.float64(), request.degree, sigma)
    return polynomial_fit(optimum.coefficients, [], optimum.chi_square, 0)
