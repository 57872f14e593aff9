"""Batched fits for sweeps: ``fit_batch(problem, requests, report) -> [Fit | None]``.

All requests of a batch differ only in learning rate and seed. Every approach but ``exact``
runs its members as one computation with a batch dimension; ``dynamic`` draws a random
degree per member per step, so its members run one after another in the same job.
"""

from collections.abc import Callable

from polyfit.models import FitRequest
from polyfit.worker.engine.batched import legendre, numpy_sgd, polynomial, sequential
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import Fit, Problem

BatchFunction = Callable[[Problem, list[FitRequest], BatchReport], list[Fit | None]]

BATCHED: dict[str, BatchFunction] = {
    "numpy": numpy_sgd.fit_batch,
    "tensor": polynomial.fit_batch,
    "autograd": polynomial.fit_batch,
    "nn": polynomial.fit_batch,
    "optim": polynomial.fit_batch,
    "module": polynomial.fit_batch,
    "legendre": legendre.fit_batch,
    "dynamic": sequential.fit_batch,
}
