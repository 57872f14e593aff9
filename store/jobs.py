"""JobStore: job records in Redis, with the atomic state changes the client and worker share:
the records (``records.py``: create, read, list, cancel, delete) and the attempts at running
them (``attempts.py``: claim, renew, end, requeue, orphans).

A running job holds a lease (``polyfit:lease:<id>``) that its worker renews. A job whose
lease lapsed (its worker died) is put back in the queue by ``reap``; every state change
checks the attempt's token, so a late or duplicate delivery never records a second result.
The keys are described in ``keys.py``; the state changes are the scripts in ``lua/``.
"""

from __future__ import annotations

from typing import Self

import redis

from polyfit.models.settings import Settings
from polyfit.store import scripts
from polyfit.store.attempts import Claim, JobAttempts, attempt_token
from polyfit.store.records import JobRecords, NoSuchJob, queued_job

__all__ = ["Claim", "JobStore", "NoSuchJob", "attempt_token", "queued_job"]


class JobStore(JobRecords, JobAttempts):
    """Reads and changes job records; the one place that knows the Redis layout."""

    def __init__(self, redis_client: redis.Redis, settings: Settings | None = None) -> None:
        self.redis = redis_client
        self.settings = settings or Settings()
        self.scripts = scripts.register(redis_client)
        self._lapsed_since: dict[str, float] = {}  # job id → when ``reap`` saw its lease lapsed

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> Self:
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=5, health_check_interval=30
        )
        return cls(client, settings)

