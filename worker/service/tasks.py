"""The ``polyfit.fit`` task: claim the job, run the fit under a lease, record the outcome."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from functools import partial
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init
from celery.worker.request import Request
from pydantic import ValidationError

from polyfit.models import FitRequest, FitResult, JobError, JobState, messages
from polyfit.models.job import Progress, thinned
from polyfit.models.request import describe
from polyfit.store import attempt_token
from polyfit.worker.engine.fit import Cancelled, FitStopped, Report
from polyfit.worker.engine.run import DeviceUnavailable, resolve_device, run_fit, with_seed
from polyfit.worker.engine.threads import process_share, use_threads_for
from polyfit.worker.engine.torch_compat import load_dynamo
from polyfit.worker.engine.warm import warm_up
from polyfit.worker.service import metrics
from polyfit.worker.service.app import RETRY_TRANSIENT, app, settings, store
from polyfit.worker.service.away import unless_away, until_written
from polyfit.worker.service.leases import leases
from polyfit.worker.service.memory import keep_freed_memory
from polyfit.worker.service.watchdog import watchdog

log = logging.getLogger("polyfit.worker")

THREADS = process_share()
keep_freed_memory()  # before the pool forks: its processes inherit it

load_dynamo()  # in the main process before the pool forks: no fit pays it


@worker_process_init.connect
def warm_pool_process(**_: Any) -> None:
    """Prefork: each pool process warms itself after the fork (torch's threads do not
    survive a fork, so the main process runs no fit)."""
    if settings.warm_up:
        _warm()


@worker_init.connect
def prepare_main_process(sender: Any, **_: Any) -> None:
    """Solo and threads pools run their jobs in the main process: it warms before it
    consumes, and watches its fits' hard time limit itself (watchdog.py)."""
    pool = sender.pool_cls if isinstance(sender.pool_cls, str) else sender.pool_cls.__module__
    if "prefork" in pool:
        return
    watchdog.start(store(), settings.hard_time_limit)
    if settings.warm_up:
        _warm()


def _warm() -> None:
    use_threads_for(0, THREADS)
    try:
        log.info("warmed up every approach in %.2f s", warm_up())
    except Exception:  # a worker that cannot warm up still runs its jobs, cold
        log.exception("warm-up failed; the first jobs will trace their steps themselves")


class JobRequest(Request):
    """Fails the job when Celery's hard time limit kills the process running it."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if soft:
            return
        job_id = messages.record_id(self.id, self.args, self.kwargs, "job_id")
        error = JobError(type="TimeLimitExceeded", message=f"time limit exceeded ({timeout:g} s,"
                         " hard)")
        store().fail_running(job_id, error, attempt_token(self.hostname, self.worker_pid))


@app.task(name=messages.FIT, bind=True, Request=JobRequest, **RETRY_TRANSIENT)
def fit(self, *args: Any, **kwargs: Any) -> None:
    job_id = messages.record_id(self.request.id, args, kwargs, "job_id")
    run_job(job_id, self.request.hostname or socket.gethostname())


def run_job(job_id: str, worker: str) -> None:
    """Run one delivery of a job: claim it, then validate and run the request its record
    holds. A bad request fails the job; it never raises for it."""
    jobs = store()
    token = attempt_token(worker, os.getpid()) + uuid.uuid4().hex
    claim = jobs.claim(job_id, token, worker)
    if claim.outcome != "claimed":
        log.info("job %s not run: %s", job_id, claim.outcome)
        return
    try:
        request = FitRequest.model_validate_json(claim.request or "null")
        device = resolve_device(request)
    except (ValidationError, DeviceUnavailable) as error:
        reason = describe(error) if isinstance(error, ValidationError) else str(error)
        refusal = JobError(type=type(error).__name__, message=reason)
        until_written(lambda: jobs.fail(job_id, token, refusal), f"job {job_id} refused")
        log.error("job %s refused: %s", job_id, reason)
        return
    # a seed drawn by the first attempt is recorded: a re-delivery runs the same seed
    drawn = with_seed(request) if request.seed is None else None
    request = drawn or request
    until_written(lambda: jobs.started(job_id, device, drawn), f"job {job_id}")

    leases.hold([job_id], token)
    watchdog.watch([job_id], token)
    last_progress = 0.0

    def on_progress(step: int, loss: float) -> None:
        nonlocal last_progress
        now = time.monotonic()
        if now - last_progress >= settings.progress_interval:
            last_progress = now
            unless_away(lambda: jobs.progress(job_id, token, Progress(
                step=step, steps=request.steps, loss=loss, history=thinned(report.history),
                coefficients=report.coefficients() if report.coefficients else None)),
                None, f"job {job_id} progress")

    def cancel_requested() -> bool:
        return leases.lost(job_id) or unless_away(lambda: jobs.cancel_requested(job_id), False,
                                                  f"job {job_id} cancel check")

    report = Report(request.record_every or 1, request.steps or 0, on_progress,
                    cancel_requested, settings.soft_time_limit)
    use_threads_for(request.point_count, THREADS)
    result: FitResult | None = None
    state = JobState.FAILED
    try:
        result = run_fit(request, report, device, settings.compile)
    except Cancelled as stop:
        state = JobState.CANCELLED
        end = partial(jobs.fail, job_id, token, JobError(type="Cancelled", message=str(stop)),
                      stop.history, cancelled=True)
    except FitStopped as stop:
        end = partial(jobs.fail, job_id, token,
                      JobError(type=type(stop).__name__, message=str(stop)), stop.history)
    except SoftTimeLimitExceeded:
        end = partial(jobs.fail, job_id, token,
                      JobError(type="TimeLimitExceeded", message="time limit exceeded"),
                      report.history)
    except Exception as error:  # a deterministic failure of this job: record it, do not retry
        log.exception("job %s failed", job_id)
        end = partial(jobs.fail, job_id, token,
                      JobError(type=type(error).__name__, message=str(error)), report.history)
    else:
        state = JobState.SUCCEEDED
        end = partial(jobs.succeed, job_id, token, result, request.approach)
    watchdog.forget([job_id])  # the fit is over: waiting to record it is no hang
    try:
        if until_written(end, f"job {job_id} end"):
            metrics.job_ended(request.approach, state, result)
    finally:
        leases.release([job_id])
