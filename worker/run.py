"""run_fit: one validated request in, one FitResult out — what the task and the tests call."""

from __future__ import annotations

import secrets
import time

import torch

from models import FitRequest, FitResult
from models.curves import least_squares
from models.request import NUMPY_APPROACHES, POLYNOMIAL_APPROACHES
from worker.approaches import APPROACHES, compiles
from worker.fit import Report, make_problem


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
    worker/descent.py."""
    device = device or resolve_device(request)
    compiled = compiled and compiles(request)
    problem = make_problem(request, device, compiled)
    started = time.perf_counter()
    fit = APPROACHES[request.approach](problem, request, report)
    fit_seconds = time.perf_counter() - started
    optimum = None
    if request.approach in POLYNOMIAL_APPROACHES:
        optimum = least_squares(*problem.float64(), request.degree)[1]
    return FitResult(
        coefficients=fit.coefficients,
        initial_coefficients=fit.initial_coefficients,
        formula=fit.formula,
        loss_history=report.history,
        final_loss=fit.final_loss,
        optimum_loss=optimum,
        steps_run=fit.steps_run,
        device=device,
        fit_seconds=fit_seconds,
        compiled=compiled,
    )
