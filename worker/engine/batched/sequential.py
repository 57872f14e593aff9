"""Members one after another inside the sweep job, for ``dynamic`` (each step draws its own
random degree from the member's seed, so members do not share one computation), for
``exact``, and for sweeps over several degrees. Each member runs the single approach, so its
result is the single job's by construction."""

from __future__ import annotations

import time

from polyfit.models import FitRequest
from polyfit.worker.engine.approaches import APPROACHES
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import Fit, FitStopped, Problem, Report


def fit_batch(problem: Problem, requests: list[FitRequest],
              report: BatchReport) -> list[Fit | None]:
    """Fit each member in turn; a stopped member's entry is None (its reason is in report)."""
    fits: list[Fit | None] = []
    for row, request in enumerate(requests):
        report.poll(0)  # past the time limit, every member left stops here
        if row in report.stopped:
            fits.append(None)
            continue
        single = Report(request.record_every or 1, request.steps or 0, time_limit=_left(report),
                        on_progress=lambda t, loss, row=row: _progress(report, row, t, loss),
                        cancel_requested=lambda row=row: _cancelled(report, row))
        try:
            fits.append(APPROACHES[request.approach](problem, request, single))
        except FitStopped as stop:
            report.stop(row, stop)
            fits.append(None)
        finally:
            report.histories[row] = single.history
    return fits


def _left(report: BatchReport) -> float | None:
    if report.time_limit is None:
        return None
    return report.time_limit - (time.perf_counter() - report.started)


def _progress(report: BatchReport, row: int, t: int, loss: float) -> None:
    report.on_progress(t, [loss if i == row else None for i in range(report.size)])


def _cancelled(report: BatchReport, row: int) -> bool:
    report.poll(0)
    return row in report.stopped
