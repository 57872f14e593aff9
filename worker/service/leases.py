"""The leases of the jobs this process runs, renewed from one thread: a lease that lapses
tells the reaper that the worker died."""

from __future__ import annotations

import logging
import threading
import time

import redis

from polyfit.worker.service import metrics
from polyfit.worker.service.app import settings, store

log = logging.getLogger("polyfit.worker")


class Leases:
    """Renews the leases of the jobs this process is running (a job, or a sweep's members),
    all from one thread, started on first use (after the pool forked), one round trip per
    attempt; notes the jobs that stopped being their attempt's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # job id → the attempt's token
        self._lost: set[str] = set()
        self._thread: threading.Thread | None = None

    def hold(self, job_ids: list[str], token: str) -> None:
        with self._lock:
            for job_id in job_ids:
                self._held[job_id] = token
                self._lost.discard(job_id)
            metrics.RUNNING.set(len(self._held))
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew, name="polyfit-leases",
                                                daemon=True)
                self._thread.start()

    def release(self, job_ids: list[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                self._held.pop(job_id, None)
                self._lost.discard(job_id)
            metrics.RUNNING.set(len(self._held))

    def lost(self, job_id: str) -> bool:
        return job_id in self._lost

    def _renew(self) -> None:
        while True:
            time.sleep(settings.lease_seconds / 3)
            attempts: dict[str, list[str]] = {}  # token → its job ids
            with self._lock:
                for job_id, token in self._held.items():
                    attempts.setdefault(token, []).append(job_id)
            for token, job_ids in attempts.items():
                try:
                    renewed = store().renew(job_ids, token)
                except redis.RedisError as error:
                    log.warning("lease renewal for %d job(s) failed: %s", len(job_ids), error)
                    continue
                with self._lock:
                    self._lost.update(job_id for job_id, alive in zip(job_ids, renewed,
                                                                      strict=True)
                                      if not alive and self._held.get(job_id) == token)


leases = Leases()
