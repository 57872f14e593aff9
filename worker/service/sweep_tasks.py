"""The ``polyfit.sweep`` task: claim a sweep's members, fit them as one batch under their
leases, and record each member's outcome in its own job record.

Recovery: every claimed member holds a lease that one thread renews for all. If the worker
dies, the leases lapse and the reaper re-queues each member as a single ``polyfit.fit`` job,
so the sweep completes member by member with the same results; a later delivery of the
sweep message claims only members still queued (none, by then) and does nothing else.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from celery.worker.request import Request
from pydantic import ValidationError

from polyfit.models import FitRequest, FitResult, JobError, JobState, messages
from polyfit.models.request import describe
from polyfit.models.sweep import SweepRequest
from polyfit.store import NoSuchSweep, attempt_token
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import Cancelled, TimeLimitExceeded
from polyfit.worker.engine.run import resolve_device
from polyfit.worker.engine.sweep import run_sweep
from polyfit.worker.engine.threads import use_threads_for
from polyfit.worker.service import metrics
from polyfit.worker.service.app import RETRY_TRANSIENT, app, settings, store
from polyfit.worker.service.away import unless_away, until_written
from polyfit.worker.service.leases import leases
from polyfit.worker.service.tasks import THREADS
from polyfit.worker.service.watchdog import watchdog

log = logging.getLogger("polyfit.worker")
MEMBER_PROGRESS_SECONDS = 1.0  # member records are written less often than the sweep's

class SweepJobRequest(Request):
    """Fails the running members when Celery's hard time limit kills the process."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if soft:
            return
        sweep_id = messages.record_id(self.id, self.args, self.kwargs, "sweep_id")
        error = JobError(type="TimeLimitExceeded", message=f"time limit exceeded "
                         f"({timeout:g} s, hard)")
        try:
            member_ids = store().member_ids(sweep_id)
        except NoSuchSweep:
            return
        attempt = attempt_token(self.hostname, self.worker_pid)
        for job_id in member_ids:
            store().fail_running(job_id, error, attempt)


@app.task(name=messages.SWEEP, bind=True, Request=SweepJobRequest, **RETRY_TRANSIENT)
def sweep(self, *args: Any, **kwargs: Any) -> None:
    sweep_id = messages.record_id(self.request.id, args, kwargs, "sweep_id")
    run_sweep_job(sweep_id, self.request.hostname or socket.gethostname())


def run_sweep_job(sweep_id: str, worker: str) -> None:
    """Run one delivery of a sweep: the request its record holds. A bad request fails its
    members; it never raises for it."""
    sweeps = store()
    try:
        member_ids, stored = sweeps.stored_sweep(sweep_id)
    except NoSuchSweep:
        log.error("sweep %s not found; message dropped", sweep_id)
        return
    try:
        requests = SweepRequest.model_validate_json(stored or "null").members()
    except ValidationError as error:
        sweeps.fail_members_unclaimed(member_ids, JobError(type="ValidationError",
                                                           message=describe(error)))
        sweeps.expire_sweep(sweep_id)
        log.error("sweep %s refused: %s", sweep_id, describe(error))
        return
    if len(requests) != len(member_ids):
        sweeps.fail_members_unclaimed(member_ids, JobError(
            type="ValidationError", message="the sweep's request does not match its members"))
        sweeps.expire_sweep(sweep_id)
        return

    token = attempt_token(worker, os.getpid()) + uuid.uuid4().hex
    outcomes = sweeps.claim_members(member_ids, token, worker)
    rows = [row for row, outcome in enumerate(outcomes) if outcome == "claimed"]
    if not rows:
        log.info("sweep %s: no member left to run", sweep_id)
        # Expire the sweep with its members only once they all ended: a delivery that finds
        # them running elsewhere (their leases live) must leave the record be.
        if all(state.finished for state in sweeps.member_states(member_ids)):
            sweeps.expire_sweep(sweep_id)
        return
    run_claimed(sweep_id, [member_ids[r] for r in rows], [requests[r] for r in rows], token,
                worker)


def run_claimed(sweep_id: str, member_ids: list[str], requests: list[FitRequest], token: str,
                worker: str) -> None:
    """Fit the claimed members as one batch and record every member's outcome."""
    sweeps = store()
    leases.hold(member_ids, token)
    watchdog.watch(member_ids, token)
    base = requests[0]
    steps = base.steps or 0  # exact takes none
    progress = _Progress(sweep_id, token, member_ids, steps)
    report = BatchReport(len(requests), base.record_every or 1, steps, progress,
                         lambda: _stops(member_ids), settings.soft_time_limit)
    started = time.perf_counter()
    try:
        device = resolve_device(base)
        sweeps.start_sweep(sweep_id, worker, device, member_ids)
        log.info("sweep %s: %d members of %s on %s", sweep_id, len(requests), base.approach,
                 device)
        use_threads_for(base.point_count * len(requests), THREADS)
        results = run_sweep(requests, report, device)
    except SoftTimeLimitExceeded:
        _fail_all(member_ids, token, report, JobError(type="TimeLimitExceeded",
                                                      message="time limit exceeded"),
                  base.approach)
    except Exception as error:  # a deterministic failure of this batch: record it, no retry
        log.exception("sweep %s failed", sweep_id)
        _fail_all(member_ids, token, report, JobError(type=type(error).__name__,
                                                      message=str(error)), base.approach)
    else:
        _record(member_ids, token, results, report, base.approach)
    finally:
        watchdog.forget(member_ids)
        leases.release(member_ids)
        fit_seconds = time.perf_counter() - started
        until_written(lambda: sweeps.finish_sweep(sweep_id, fit_seconds), f"sweep {sweep_id}")


class _Progress:
    """Writes the sweep's progress (step, best loss) and, less often, each member's."""

    def __init__(self, sweep_id: str, token: str, member_ids: list[str], steps: int) -> None:
        self.sweep_id, self.token, self.member_ids, self.steps = sweep_id, token, member_ids, steps
        self.last_sweep = self.last_members = 0.0

    def __call__(self, step: int, losses: list[float | None]) -> None:
        now = time.monotonic()
        if now - self.last_sweep < settings.progress_interval:
            return
        self.last_sweep = now
        members = None
        if now - self.last_members >= max(settings.progress_interval, MEMBER_PROGRESS_SECONDS):
            self.last_members = now
            members = {job_id: loss for job_id, loss in zip(self.member_ids, losses, strict=True)
                       if loss is not None}
        live = [loss for loss in losses if loss is not None]
        unless_away(lambda: store().sweep_progress(self.sweep_id, self.token, step, self.steps,
                                                   min(live, default=None), len(live), members),
                    None, f"sweep {self.sweep_id} progress")


def _stops(member_ids: list[str]) -> set[int]:
    """Rows whose cancel was asked for, or whose lease another attempt now holds."""
    flags = unless_away(lambda: store().cancels_requested(member_ids), [False] * len(member_ids),
                        "sweep cancel check")
    return {row for row, (job_id, flag) in enumerate(zip(member_ids, flags, strict=True))
            if flag or leases.lost(job_id)}


def _record(member_ids: list[str], token: str, results: list[FitResult | None],
            report: BatchReport, approach: str) -> None:
    succeeded: dict[str, FitResult] = {}
    failed: dict[str, tuple[JobError, list, bool]] = {}
    for row, (job_id, result) in enumerate(zip(member_ids, results, strict=True)):
        if leases.lost(job_id):
            continue  # no longer this attempt's: another delivery records it
        if result is not None:
            succeeded[job_id] = result
            continue
        stop = report.stopped[row]
        failed[job_id] = (JobError(type=type(stop).__name__, message=str(stop)),
                          report.histories[row], isinstance(stop, Cancelled))
    _finish(token, succeeded, failed, approach)


def _fail_all(member_ids: list[str], token: str, report: BatchReport, error: JobError,
              approach: str) -> None:
    failed = {}
    for row, job_id in enumerate(member_ids):
        stop = report.stopped.get(row)
        if stop is not None and not isinstance(stop, TimeLimitExceeded):
            failed[job_id] = (JobError(type=type(stop).__name__, message=str(stop)),
                              report.histories[row], isinstance(stop, Cancelled))
        else:
            failed[job_id] = (error, report.histories[row], False)
    _finish(token, {}, failed, approach)


def _finish(token: str, succeeded: dict[str, FitResult],
            failed: dict[str, tuple[JobError, list, bool]], approach: str) -> None:
    """Record the members' outcomes, and count those that were still this attempt's."""
    recorded = until_written(lambda: store().finish_members(token, succeeded, failed, approach),
                             "sweep members' end")
    for job_id, result in succeeded.items():
        if job_id in recorded:
            metrics.job_ended(approach, JobState.SUCCEEDED, result)
    for job_id, (_, _, cancelled) in failed.items():
        if job_id in recorded:
            metrics.job_ended(approach, JobState.CANCELLED if cancelled else JobState.FAILED)
