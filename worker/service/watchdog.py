"""Hard time limits where Celery has none.

Celery's hard time limit kills a prefork pool's child. The solo and threads pools (the CUDA
workers') run fits in the worker's own process, where nothing can stop a fit stuck inside a
kernel or a lock: the cooperative cancel and the soft limit are checked between steps. There
a thread watches the fits the process runs; one past ``POLYFIT_HARD_TIME_LIMIT`` is failed
"time limit exceeded (hard)", as the prefork pool fails it, and the process exits with
``EXIT_HARD_LIMIT`` for its supervisor (compose's ``restart: unless-stopped``) to start it
again. Other jobs the process held lose their leases, and the reaper re-queues them.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from polyfit.models import JobError
from polyfit.store import JobStore

log = logging.getLogger("polyfit.worker")

EXIT_HARD_LIMIT = 75  # EX_TEMPFAIL: start me again


class Watchdog:
    """Ends the process when a fit it runs passes the hard limit; idle until ``start``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, float]] = {}  # job id → (attempt token, started)
        self._thread: threading.Thread | None = None

    def start(self, store: JobStore, limit: float) -> None:
        """Watch from now on (an in-process pool's worker calls it once, at start-up)."""
        self._thread = threading.Thread(target=self._watch, args=(store, limit),
                                        name="polyfit-watchdog", daemon=True)
        self._thread.start()

    def watch(self, job_ids: list[str], token: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._running.update((job_id, (token, now)) for job_id in job_ids)

    def forget(self, job_ids: list[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                self._running.pop(job_id, None)

    def _watch(self, store: JobStore, limit: float) -> None:
        while True:
            time.sleep(min(1.0, limit / 4))
            now = time.monotonic()
            with self._lock:
                overdue = {job_id: token for job_id, (token, started) in self._running.items()
                           if now - started > limit}
            if overdue:
                self._end(store, limit, overdue)

    @staticmethod
    def _end(store: JobStore, limit: float, overdue: dict[str, str]) -> None:
        error = JobError(type="TimeLimitExceeded",
                         message=f"time limit exceeded ({limit:g} s, hard)")
        for job_id, token in overdue.items():
            try:
                store.fail_running(job_id, error, token)
            except Exception:  # Redis away: the lease lapses and the reaper re-queues it
                log.exception("job %s: could not record its hard time limit", job_id)
        log.critical("%d fit(s) ran past the hard time limit (%g s): %s; exiting (status %d) "
                     "for the supervisor to restart this worker", len(overdue), limit,
                     " ".join(overdue), EXIT_HARD_LIMIT)
        logging.shutdown()
        os._exit(EXIT_HARD_LIMIT)


watchdog = Watchdog()
