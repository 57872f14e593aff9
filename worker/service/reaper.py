"""The reaper: a thread in each worker's main process that re-queues jobs whose worker died,
sends again queued jobs whose message is gone, trims expired jobs from the listings and says
the worker is alive. It reaches the Celery app through the worker Celery hands it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from celery import Celery, bootsteps

from polyfit.models import JobState, messages
from polyfit.models.settings import current_settings
from polyfit.store import JobStore

log = logging.getLogger("polyfit.worker")


class Reaper(bootsteps.StartStopStep):
    """In the worker's main process: re-queue jobs whose worker died (their lease lapsed),
    send again queued jobs whose message is gone, now and then drop expired jobs from the
    listings (``JobStore.trim``), and say this worker is alive (``JobStore.announce``)."""

    TRIM_EVERY = 60.0  # seconds
    ANNOUNCE_EVERY = 5.0  # seconds: the workers' sign of life in the metrics

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs) -> None:
        self.hostname = worker.hostname
        self.app: Celery = worker.app
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, worker) -> None:
        self.thread = threading.Thread(target=self.run, name="polyfit-reaper", daemon=True)
        self.thread.start()

    def stop(self, worker) -> None:
        self.stopped.set()

    def run(self) -> None:
        settings = current_settings()
        store = JobStore.from_url(settings.redis_url, settings)
        chores: list[tuple[float, Callable[[JobStore], object]]] = [
                  (max(settings.lease_seconds / 3, 0.5),
                   lambda store: requeue_lapsed(store, self.app, settings.lease_seconds)),
                  (settings.orphan_seconds / 4,
                   lambda store: resend_orphans(store, self.app, settings.orphan_seconds)),
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


def requeue_lapsed(store: JobStore, app: Celery, lease_seconds: float) -> list[str]:
    """Send a fresh message for each job whose lease lapsed a lease's time ago: the store's
    reads and writes in one round trip each, whatever the count (a crashed sweep's
    thousands of members)."""
    lapsed = [(job_id, queue) for job_id, _, queue
              in store.whereabouts(store.reap(grace=lease_seconds))]
    return _send_again(app, lapsed, store.requeued,
                       "re-queued %d job(s) whose worker stopped renewing the lease: %s")


def resend_orphans(store: JobStore, app: Celery, orphan_seconds: float) -> list[str]:
    """Send a fresh message for each queued job whose message is gone, once it has been
    queued half of ``POLYFIT_ORPHAN_SECONDS``: checked every quarter of it, a lost message
    is replaced within that time."""
    orphaned = [(job_id, queue) for job_id, state, queue
                in store.whereabouts(store.orphans(orphan_seconds / 2))
                if state == JobState.QUEUED.value]
    return _send_again(app, orphaned, store.resent,
                       "sent again %d queued job(s) whose message was gone: %s")


def _send_again(app: Celery, jobs: list[tuple[str, str]], sent: Callable[[list[str]], None],
                message: str) -> list[str]:
    """A fresh ``polyfit.fit`` message for each (job id, queue), then ``sent`` (the store's
    note of it) and one warning, ``message`` with the count and the first ids; returns the
    ids."""
    for job_id, queue in jobs:
        app.send_task(messages.FIT, args=messages.arguments(job_id), queue=queue,
                      task_id=job_id)
    job_ids = [job_id for job_id, _ in jobs]
    sent(job_ids)
    if job_ids:
        log.warning(message, len(job_ids), " ".join(job_ids[:20]))
    return job_ids

