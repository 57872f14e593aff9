"""run_sweep: the members of a sweep in, one FitResult per member out (None where a member
stopped; the BatchReport says why) — what the sweep task, the tests and the bench call."""

from __future__ import annotations

import time

from polyfit.models import FitRequest, FitResult
from polyfit.worker.engine.batched import BATCHED, sequential
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import diverged_unrecorded, make_problem
from polyfit.worker.engine.run import fitted_points, resolve_device


def run_sweep(requests: list[FitRequest], report: BatchReport,
              device: str | None = None) -> list[FitResult | None]:
    """Fit ``requests`` (which differ only in learning rate, seed and degree) as one batch;
    members of several degrees, and ``exact``'s, one after another instead.

    Each member's ``fit_seconds`` is its share of the batch: the batch's time over its size.
    """
    base = requests[0]
    device = device or resolve_device(base)
    problem = make_problem(base, device)
    one_problem = base.approach != "exact" and len({r.degree for r in requests}) == 1
    batch = BATCHED[base.approach] if one_problem else sequential.fit_batch
    started = time.perf_counter()
    fits = batch(problem, requests, report)
    share = (time.perf_counter() - started) / len(requests)
    for row, fit in enumerate(fits):
        if fit is not None and (diverged := diverged_unrecorded(fit, report.histories[row])):
            report.stop(row, diverged)
            fits[row] = None
    results: list[FitResult | None] = [None] * len(requests)
    for degree in sorted({r.degree for r in requests}):
        rows = [row for row, (request, fit) in enumerate(zip(requests, fits, strict=True))
                if fit is not None and request.degree == degree]
        if not rows:
            continue
        points = fitted_points(requests[rows[0]], problem)
        statistics = points.statistics([fits[row].coefficients for row in rows])
        for row, stats in zip(rows, statistics, strict=True):
            fit = fits[row]
            results[row] = FitResult(
                coefficients=fit.coefficients, initial_coefficients=fit.initial_coefficients,
                formula=fit.formula, loss_history=report.histories[row],
                final_loss=fit.final_loss, optimum_loss=points.optimum_loss,
                steps_run=fit.steps_run, device=problem.device, fit_seconds=share,
                statistics=stats)
    return results
