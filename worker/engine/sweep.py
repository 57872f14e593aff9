"""run_sweep: the members of a sweep in, one FitResult per member out (None where a member
stopped; the BatchReport says why) — what the sweep task, the tests and the bench call."""

from __future__ import annotations

import time

from polyfit.models import FitRequest, FitResult
from polyfit.worker.engine.batched import BATCHED
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import diverged_unrecorded, make_problem
from polyfit.worker.engine.run import optimum_loss, resolve_device


def run_sweep(requests: list[FitRequest], report: BatchReport,
              device: str | None = None) -> list[FitResult | None]:
    """Fit ``requests`` (which differ only in learning rate and seed) as one batch.

    Each member's ``fit_seconds`` is its share of the batch: the batch's time over its size.
    """
    base = requests[0]
    device = device or resolve_device(base)
    problem = make_problem(base, device)
    started = time.perf_counter()
    fits = BATCHED[base.approach](problem, requests, report)
    share = (time.perf_counter() - started) / len(requests)
    for row, fit in enumerate(fits):
        if fit is not None and (diverged := diverged_unrecorded(fit, report.histories[row])):
            report.stop(row, diverged)
            fits[row] = None
    optimum = optimum_loss(base, problem)
    return [None if fit is None else FitResult(
        coefficients=fit.coefficients, initial_coefficients=fit.initial_coefficients,
        formula=fit.formula, loss_history=history, final_loss=fit.final_loss,
        optimum_loss=optimum, steps_run=fit.steps_run, device=problem.device, fit_seconds=share)
        for fit, history in zip(fits, report.histories, strict=True)]
