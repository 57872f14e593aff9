"""Job records, the client's side of the store: create, read, list, cancel, delete,
prune, and trim the listings. ``JobStore`` (jobs.py) joins it with ``JobAttempts``."""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Iterator
from itertools import islice
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script

from polyfit.models.job import FINISHED_STATES, JobRecord, JobState
from polyfit.models.request import APPROACHES, FitRequest
from polyfit.models.settings import Settings
from polyfit.store import stats
from polyfit.store.keys import (
    JOBS,
    RUNNING,
    events_channel,
    index_key,
    job_key,
    lease_key,
)


def queued_job(job_id: str, request: FitRequest, now: float,
               sweep_id: str | None = None) -> dict[str, Any]:
    """The hash of a job as submitted: the one place that writes a new job's fields."""
    fields: dict[str, Any] = {
        "job_id": job_id,
        "approach": request.approach,
        "state": JobState.QUEUED.value,
        "queue": request.queue,
        "request": request.model_dump_json(),
        "submitted_at": repr(now),
        "attempts": 0,
        "requeues": 0,
    }
    if sweep_id:
        fields["sweep_id"] = sweep_id
    return fields


class NoSuchJob(KeyError):
    """No job with this id exists (or it expired)."""


class StoreAttributes:
    """What both halves of the store read; ``JobStore.__init__`` sets them."""

    redis: Redis
    settings: Settings
    scripts: dict[str, Script]

    @property
    def ttl(self) -> int:
        """Seconds a finished record is kept (POLYFIT_RESULT_TTL; 0 keeps it)."""
        return self.settings.result_ttl or 0


class JobRecords(StoreAttributes):
    """Reads and changes job records as a client does."""


    def create(
        self, request: FitRequest, job_id: str | None = None, sweep_id: str | None = None
    ) -> str:
        """Record a new queued job and return its id."""
        job_id = job_id or uuid.uuid4().hex
        pipe = self.redis.pipeline()
        self.add_queued(pipe, job_id, request, time.time(), sweep_id)
        pipe.execute()
        return job_id

    @staticmethod
    def add_queued(pipe: Pipeline, job_id: str, request: FitRequest, now: float,
                   sweep_id: str | None = None) -> None:
        """Queue the writes of a new job: its hash, and its place in the listings."""
        pipe.hset(job_key(job_id), mapping=queued_job(job_id, request, now, sweep_id))
        pipe.zadd(JOBS, {job_id: now})
        pipe.zadd(index_key(JobState.QUEUED.value, request.approach), {job_id: now})
        stats.count_submitted(pipe, request.approach, sweep_member=sweep_id is not None)

    def delete(self, job_ids: list[str]) -> list[str]:
        """Remove jobs, whatever their state, in one round trip; returns the state each had
        ('missing' for an unknown id). A running job's worker stops it at its next lease
        renewal (within a third of POLYFIT_LEASE_SECONDS) and writes nothing more."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            self.scripts["delete"](keys=[job_key(job_id), lease_key(job_id), RUNNING, JOBS],
                                   args=[job_id, events_channel(job_id)], client=pipe)
        return pipe.execute() if job_ids else []

    def prune(self, older_than: float, states: set[str] | None = None, batch: int = 1000) -> int:
        """Delete the finished jobs (only those in ``states``, when given) submitted more than
        ``older_than`` seconds ago; returns how many. Served from the index."""
        unfinished = (states or set()) - set(FINISHED_STATES)
        if unfinished:
            raise ValueError(f"prune removes finished jobs only, not {', '.join(unfinished)}")
        cutoff = time.time() - older_than
        deleted = 0
        for key in [index_key(state, approach) for state in states or FINISHED_STATES
                    for approach in APPROACHES]:
            while job_ids := self.redis.zrangebyscore(key, "-inf", cutoff, start=0, num=batch):
                deleted += sum(state != "missing" for state in self.delete(job_ids))
                self.redis.zrem(key, *job_ids)  # expired ones, which delete left listed
        return deleted

    def get(self, job_id: str) -> JobRecord:
        fields = self.redis.hgetall(job_key(job_id))
        if not fields:
            raise NoSuchJob(job_id)
        return JobRecord.from_hash(fields)

    def get_many(self, job_ids: list[str]) -> list[JobRecord]:
        """The job records, in the order given (expired ones are left out), in one round
        trip."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(job_key(job_id))
        return [JobRecord.from_hash(fields) for fields in pipe.execute() if fields]

    def list(self, limit: int = 20, states: set[str] | None = None,
             approach: str | None = None) -> list[JobRecord]:
        """Newest first, filtered by state and approach: read from the index of each (state,
        approach) asked for, merged, so that the cost grows with ``limit``, not with the
        number of jobs held. Ids whose record expired are dropped from the index met."""
        if states or approach:
            keys = [index_key(state, name) for state in states or [s.value for s in JobState]
                    for name in ([approach] if approach else APPROACHES)]
        else:
            keys = [JOBS]
        newest = heapq.merge(*(self._newest_in(key, limit) for key in keys),
                             key=lambda entry: -entry[1])
        found: list[JobRecord] = []
        while len(found) < limit and (batch := list(islice(newest, limit - len(found)))):
            pipe = self.redis.pipeline(transaction=False)
            for job_id, _, _ in batch:
                pipe.hgetall(job_key(job_id))
            for (job_id, _, key), fields in zip(batch, pipe.execute(), strict=True):
                if not fields:  # expired (POLYFIT_RESULT_TTL)
                    self.redis.zrem(key, job_id)
                elif not states or fields.get("state") in states:  # not moved on meanwhile
                    found.append(JobRecord.from_hash(fields))
        return found

    def _newest_in(self, key: str, page: int) -> Iterator[tuple[str, float, str]]:
        """(id, submission time, key) of the jobs in one sorted set, newest first."""
        start = 0
        while entries := self.redis.zrevrange(key, start, start + page - 1, withscores=True):
            yield from ((job_id, score, key) for job_id, score in entries)
            start += page

    def trim(self, batch: int = 100) -> int:
        """Housekeeping: drop from the listings the oldest ids whose record expired, up to
        ``batch`` per set; returns how many. Workers call it now and then (app.py)."""
        dropped = 0
        for key in [JOBS] + [index_key(state, approach) for state in FINISHED_STATES
                             for approach in APPROACHES]:
            job_ids = self.redis.zrange(key, 0, batch - 1)
            if not job_ids:
                continue
            pipe = self.redis.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.exists(job_key(job_id))
            gone = [job_id for job_id, exists in zip(job_ids, pipe.execute(), strict=True)
                    if not exists]
            if gone:
                dropped += self.redis.zrem(key, *gone)
        return dropped

    def cancel(self, job_id: str) -> str:
        """Cancel a queued job at once, or ask a running one to stop: 'cancelled',
        'requested', or 'already <state>' for a job that had finished."""
        outcome = self.scripts["cancel"](keys=[job_key(job_id)],
                                         args=[repr(time.time()), self.ttl, job_id])
        if outcome == "missing":
            raise NoSuchJob(job_id)
        if not outcome.startswith("already"):
            self.publish(job_id, outcome)
        return outcome

    def publish(self, job_id: str, event: str) -> None:
        self.redis.publish(events_channel(job_id), event)
