"""run_fit: one validated request in, one FitResult out — what the task and the tests call."""

from __future__ import annotations

import secrets
import time
from functools import lru_cache

import torch

from polyfit.models import FitRequest, FitResult
from polyfit.models.request import NUMPY_APPROACHES
from polyfit.models.statistics import FittedPoints
from polyfit.worker.engine.approaches import APPROACHES, compiles
from polyfit.worker.engine.fit import Problem, Report, diverged_unrecorded, make_problem, sample


class DeviceUnavailable(RuntimeError):
    pass


def with_seed(request: FitRequest) -> FitRequest:
    """The request with a drawn seed when it has none, so the run can be repeated."""
    if request.seed is not None:
        return request
    return request.model_copy(update={"seed": secrets.randbelow(2**63)})


def resolve_device(request: FitRequest) -> str:
    """``auto`` is cuda where this worker has a GPU; NumPy approaches always run on cpu."""
    if request.approach in NUMPY_APPROACHES:
        return "cpu"
    if request.device == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if request.device == "cuda":
        raise DeviceUnavailable("device cuda was requested but this worker has no CUDA GPU; "
                                "submit with --device cpu or run a worker on a GPU machine")
    return "cpu"


def run_fit(request: FitRequest, report: Report, device: str | None = None,
            compiled: bool = False) -> FitResult:
    """Fit ``request`` (which must carry a seed) and time it; ``compiled``: see
    worker/engine/descent.py."""
    device = device or resolve_device(request)
    compiled = compiled and compiles(request)
    problem = make_problem(request, device, compiled)
    started = time.perf_counter()
    fit = APPROACHES[request.approach](problem, request, report)
    fit_seconds = time.perf_counter() - started
    if (diverged := diverged_unrecorded(fit, report.history)) is not None:
        raise diverged
    points = fitted_points(request, problem)
    return FitResult(
        coefficients=fit.coefficients,
        initial_coefficients=fit.initial_coefficients,
        formula=fit.formula,
        loss_history=report.history,
        final_loss=fit.final_loss,
        optimum_loss=points.optimum_loss,
        steps_run=fit.steps_run,
        device=problem.device,  # cpu for the NumPy approaches, whatever was asked
        fit_seconds=fit_seconds,
        compiled=report.compiled,  # a fit past the compiled graphs' bound runs replayed
        statistics=points.statistics([fit.coefficients])[0],
    )


def fitted_points(request: FitRequest, problem: Problem) -> FittedPoints:
    """``problem``'s points prepared for the statistics of ``request``'s model, with the
    least-squares optimum of a polynomial: for sampled points, made once per sampling and
    model (every job would otherwise solve the same problem again)."""
    if request.data is not None:
        return FittedPoints(request.approach, request.degree, *problem.float64(),
                            request.data.sigma, request.absolute_sigma)
    model = request.approach if request.approach in ("legendre", "dynamic") else "polynomial"
    device = "numpy" if request.approach in NUMPY_APPROACHES else problem.device
    return sampled_points(model, request.degree, request.target, request.x_min, request.x_max,
                          request.n_points, request.dtype, device)


@lru_cache(maxsize=8)  # as many samplings as ``sample`` keeps
def sampled_points(model: str, degree: int, target: str, x_min: float, x_max: float,
                   n_points: int, dtype: str, device: str) -> FittedPoints:
    """``fitted_points`` of the points ``sample`` gives for these arguments."""
    x, y = sample(target, x_min, x_max, n_points, dtype, device)
    return FittedPoints(model, degree, *Problem(x, y, device).float64())
