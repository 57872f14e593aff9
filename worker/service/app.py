"""The Celery app: JSON only, late acks, one message at a time, and the lease reaper.

Start a worker with ``polyfit-worker --queues cpu`` or
``celery -A polyfit.worker.service.app worker -Q cpu``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from celery import Celery, Task, bootsteps
from celery.exceptions import Reject

from polyfit.models import JobRecord, JobState, Settings, celery_config
from polyfit.store import JobStore, SweepStore
from polyfit.worker.service.heartbeat import Heartbeat

T = TypeVar("T")
log = logging.getLogger("polyfit.worker")


class RequeuingTask(Task):
    """A task whose retry, when the retry's message cannot be sent (Redis away), puts the
    delivery back in the queue rather than dropping it as Celery does: its job is still
    queued, and nothing else would send it again."""

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().retry(*args, **kwargs)
        except Reject as dropped:
            raise Reject(dropped.reason, requeue=True) from None


settings = Settings()
app = Celery("polyfit", task_cls=RequeuingTask)
app.conf.update(
    celery_config(settings),
    broker_transport="polyfit.worker.service.kombu_compat:Transport",  # malformed items dropped
    worker_consumer="polyfit.worker.service.refusals:Consumer",  # a refused message fails its job
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_time_limit=settings.hard_time_limit,
    # The fit checks the soft limit itself; Celery's, a little later, stops one stuck in Python.
    task_soft_time_limit=settings.soft_time_limit
    + min(5.0, (settings.hard_time_limit - settings.soft_time_limit) / 2),
    broker_connection_max_retries=None,  # keep reconnecting to Redis, never give up
    worker_cancel_long_running_tasks_on_connection_loss=False,
    worker_hijack_root_logger=False,
    worker_send_task_events=settings.task_events,  # Flower's task list (docs/DEPLOY.md)
    worker_proc_alive_timeout=60.0,  # a pool process warms up before it reports (tasks.py)
    imports=["polyfit.worker.service.tasks", "polyfit.worker.service.sweep_tasks",
             "polyfit.worker.service.ping"],
)

_store: SweepStore | None = None


def store() -> SweepStore:
    """The job store (with sweeps) of this process, made after any fork; all tasks share it."""
    global _store
    if _store is None:
        _store = SweepStore.from_url(settings.redis_url, settings)
    return _store


# Redis away is transient: a delivery is retried with backoff, for as long as it takes (a
# limit would end in acknowledging the message of a job still queued: lost). Anything else
# fails the job.
RETRY_TRANSIENT = {"autoretry_for": (redis.ConnectionError, redis.TimeoutError),
                   "retry_backoff": True, "retry_backoff_max": 60, "max_retries": None}

# Redis restarting, unreachable, or full (maxmemory): what a running fit waits out rather
# than failing for it, or being run again.
REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError)
_warned_at = 0.0


def unless_away(call: Callable[[], T], fallback: T, what: str) -> T:
    """``call()``, or ``fallback`` while Redis is away or full: for a running fit's progress
    writes and cancel checks, which it can do without for a while."""
    try:
        return call()
    except REDIS_AWAY as error:
        _warn_away(what, error)
        return fallback


def until_written(write: Callable[[], T], what: str) -> T:
    """``write()``, tried again with backoff until Redis takes it: a fit's outcome is kept in
    the process until it is recorded (its lease is renewed again as soon as Redis is back,
    and the reaper gives a lapsed lease a lease's time before it re-queues the job)."""
    delay = 0.5
    while True:
        try:
            return write()
        except REDIS_AWAY as error:
            _warn_away(what, error)
            time.sleep(delay)
            delay = min(2 * delay, 10.0)


def _warn_away(what: str, error: Exception) -> None:
    """One warning per 10 s at most: progress writes come ten times a second."""
    global _warned_at
    if time.monotonic() - _warned_at >= 10:
        _warned_at = time.monotonic()
        log.warning("%s: Redis is away or full (%s); waiting it out", what, error)


class Reaper(bootsteps.StartStopStep):
    """In the worker's main process: re-queue jobs whose worker died (their lease lapsed),
    send again queued jobs whose message is gone, now and then drop expired jobs from the
    listings (``JobStore.trim``), and say this worker is alive (``JobStore.announce``)."""

    TRIM_EVERY = 60.0  # seconds
    ANNOUNCE_EVERY = 5.0  # seconds: the workers' sign of life in the metrics

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs) -> None:
        self.hostname = worker.hostname
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, worker) -> None:
        self.thread = threading.Thread(target=self.run, name="polyfit-reaper", daemon=True)
        self.thread.start()

    def stop(self, worker) -> None:
        self.stopped.set()

    def run(self) -> None:
        store = JobStore.from_url(settings.redis_url, settings)
        chores = [(max(settings.lease_seconds / 3, 0.5), requeue_lapsed),
                  (settings.orphan_seconds / 4, resend_orphans),
                  (self.TRIM_EVERY, JobStore.trim),
                  (self.ANNOUNCE_EVERY, lambda store: store.announce(self.hostname))]
        last_run = [time.monotonic()] * len(chores)
        while not self.stopped.wait(min(period for period, _ in chores)):
            for number, (period, chore) in enumerate(chores):
                if time.monotonic() - last_run[number] < period:
                    continue
                last_run[number] = time.monotonic()
                try:
                    chore(store)
                except Exception as error:  # Redis away: try again next round
                    log.warning("reaper: %s", error)


def requeue_lapsed(store: JobStore) -> list[str]:
    """Send a fresh message for each job whose lease lapsed: the store's reads and writes
    in one round trip each, whatever the count (a crashed sweep's thousands of members)."""
    return _send_again(store.get_many(store.reap(grace=settings.lease_seconds)), store.requeued,
                       "re-queued %d job(s) whose worker stopped renewing the lease: %s")


def resend_orphans(store: JobStore) -> list[str]:
    """Send a fresh message for each queued job whose message is gone, once it has been
    queued half of ``POLYFIT_ORPHAN_SECONDS``: checked every quarter of it, a lost message
    is replaced within that time."""
    records = [record for record in store.get_many(store.orphans(settings.orphan_seconds / 2))
               if record.state == JobState.QUEUED]
    return _send_again(records, store.resent,
                       "sent again %d queued job(s) whose message was gone: %s")


def _send_again(records: list[JobRecord], sent: Callable[[list[str]], None],
                message: str) -> list[str]:
    """A fresh ``polyfit.fit`` message for each job, then ``sent`` (the store's note of it)
    and one warning, ``message`` with the count and the first ids; returns the ids."""
    for record in records:
        app.send_task("polyfit.fit", args=[record.job_id, record.request], queue=record.queue,
                      task_id=record.job_id)
    job_ids = [record.job_id for record in records]
    sent(job_ids)
    if job_ids:
        log.warning(message, len(job_ids), " ".join(job_ids[:20]))
    return job_ids


app.steps["worker"].add(Reaper)
app.steps["consumer"].add(Heartbeat)
