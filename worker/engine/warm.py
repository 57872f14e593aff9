"""Warm a process before its first job: every approach fits once, briefly, on each device.

A process's first fit of an approach pays for tracing and scripting its step (replay.py) and
for torch's lazy set-up of the operations it runs; its points, their least-squares optimum
and their statistics' matrices are cached per sampling (run.py). A short default fit of each
approach fills all of it, so that a worker's first job is as fast as its tenth.
"""

from __future__ import annotations

import time

import torch

from polyfit.models import FitRequest
from polyfit.models.request import NUMPY_APPROACHES
from polyfit.worker.engine.approaches import APPROACHES
from polyfit.worker.engine.fit import Report
from polyfit.worker.engine.replay import TRACE_PAYS_FROM
from polyfit.worker.engine.run import run_fit


def warm_requests(device: str) -> list[FitRequest]:
    """Each approach's default request on ``device``, run for ``TRACE_PAYS_FROM`` steps (the
    fewest that trace) with its defaults otherwise: the traced steps a default job reuses."""
    requests = []
    for approach in APPROACHES:
        if device != "cpu" and approach in NUMPY_APPROACHES:
            continue
        default = FitRequest(approach=approach, device=device, seed=0)
        steps = {"steps": TRACE_PAYS_FROM} if default.steps else {}
        requests.append(default.model_copy(update=steps))
    return requests


def warm_up() -> float:
    """Run ``warm_requests`` on the cpu and, where torch sees one, the GPU; the seconds it
    took."""
    started = time.perf_counter()
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for request in warm_requests(device):
            run_fit(request, Report(request.record_every or 1, request.steps or 0), device)
    return time.perf_counter() - started
