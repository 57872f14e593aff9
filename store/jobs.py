"""JobStore: job records in Redis, with the atomic state changes the client and worker share.

A running job holds a lease (``polyfit:lease:<id>``) that its worker renews. A job whose
lease lapsed (its worker died) is put back in the queue by ``reap``; every state change
checks the attempt's token, so a late or duplicate delivery never records a second result.
The keys are described in ``keys.py``; the state changes are the scripts in ``lua/``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis
from redis.client import Pipeline

from polyfit.models.job import FitResult, JobError, JobRecord, JobState
from polyfit.models.request import FitRequest
from polyfit.models.settings import Settings
from polyfit.store import scripts
from polyfit.store.keys import JOBS, RUNNING, events_channel, job_key, lease_key


def attempt_token(worker: str, pid: int) -> str:
    """The start of the token of an attempt run by process ``pid`` of ``worker``: what the
    worker's main process, which knows only those two, can tell its own attempts by."""
    return f"{worker}/{pid}/"


def queued_job(job_id: str, request: FitRequest, now: float,
               sweep_id: str | None = None) -> dict[str, Any]:
    """The hash of a job as submitted: the one place that writes a new job's fields."""
    fields: dict[str, Any] = {
        "job_id": job_id,
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


class JobStore:
    """Reads and changes job records; the one place that knows the Redis layout."""

    def __init__(self, redis_client: redis.Redis, settings: Settings | None = None) -> None:
        self.redis = redis_client
        self.settings = settings or Settings()
        self.scripts = scripts.register(redis_client)

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> JobStore:
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=5, health_check_interval=30
        )
        return cls(client, settings)

    @property
    def ttl(self) -> int:
        return self.settings.result_ttl or 0

    # --- client side ---

    def create(
        self, request: FitRequest, job_id: str | None = None, sweep_id: str | None = None
    ) -> str:
        """Record a new queued job and return its id."""
        job_id = job_id or uuid.uuid4().hex
        now = time.time()
        pipe = self.redis.pipeline()
        pipe.hset(job_key(job_id), mapping=queued_job(job_id, request, now, sweep_id))
        pipe.zadd(JOBS, {job_id: now})
        pipe.execute()
        return job_id

    def delete(self, job_id: str) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(job_key(job_id), lease_key(job_id))
        pipe.zrem(JOBS, job_id)
        pipe.execute()

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
        """Newest first, filtered by state and approach."""
        found: list[JobRecord] = []
        for batch in self._newest_ids():
            pipe = self.redis.pipeline()
            for job_id in batch:
                pipe.hgetall(job_key(job_id))
            for job_id, fields in zip(batch, pipe.execute(), strict=True):
                if not fields:
                    self.redis.zrem(JOBS, job_id)  # expired by POLYFIT_RESULT_TTL
                    continue
                record = JobRecord.from_hash(fields)
                if states and record.state.value not in states:
                    continue
                if approach and record.request.get("approach") != approach:
                    continue
                found.append(record)
                if len(found) >= limit:
                    return found
        return found

    def _newest_ids(self, batch: int = 200) -> Iterator[list[str]]:
        start = 0
        while ids := self.redis.zrevrange(JOBS, start, start + batch - 1):
            yield ids
            start += batch

    def cancel(self, job_id: str) -> str:
        """Cancel a queued job at once, or ask a running one to stop: 'cancelled',
        'requested', or 'already <state>' for a job that had finished."""
        outcome = self.scripts["cancel"](keys=[job_key(job_id)], args=[repr(time.time()), self.ttl])
        if outcome == "missing":
            raise NoSuchJob(job_id)
        if not outcome.startswith("already"):
            self.publish(job_id, outcome)
        return outcome

    # --- worker side ---

    def claim(self, job_id: str, token: str, worker: str, device: str = "",
              pipeline: Pipeline | None = None) -> str:
        """Take a job to run on ``device``: 'claimed', or why not ('leased', 'missing', a
        final state). With a ``pipeline``, its result is the outcome."""
        return self.scripts["claim"](
            keys=[job_key(job_id), lease_key(job_id), RUNNING],
            args=[job_id, token, int(self.settings.lease_seconds * 1000), repr(time.time()),
                  worker, self.settings.max_attempts, events_channel(job_id), device, self.ttl],
            client=pipeline)

    def set_request(self, job_id: str, request: FitRequest) -> None:
        """Record the request as run (with the seed the worker drew, when it had none)."""
        self.redis.hset(job_key(job_id), "request", request.model_dump_json())

    def renew(self, job_ids: list[str], token: str) -> list[bool]:
        """Extend the leases of this attempt's jobs in one round trip; False for a job that
        is no longer this attempt's."""
        lease_ms = int(self.settings.lease_seconds * 1000)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            self.scripts["renew"](keys=[job_key(job_id), lease_key(job_id)], args=[token, lease_ms],
                        client=pipe)
        return [bool(r) for r in pipe.execute()]

    def progress(self, job_id: str, token: str, step: int, steps: int, loss: float,
                 pipeline: Pipeline | None = None) -> Any:
        """Record and publish the progress of this attempt of a running job: an attempt that
        lost the job (or a job whose record expired) writes nothing. True when written (with
        a ``pipeline``, that is its result)."""
        return self.scripts["progress"](keys=[job_key(job_id)],
                              args=[token, json.dumps({"step": step, "steps": steps,
                                                       "loss": loss}), events_channel(job_id)],
                              client=pipeline)

    def cancel_requested(self, job_id: str) -> bool:
        return self.redis.hget(job_key(job_id), "cancel") == "1"

    def succeed(self, job_id: str, token: str, result: FitResult) -> bool:
        return self._end(job_id, token, JobState.SUCCEEDED, result=result.model_dump_json())

    def fail(self, job_id: str, token: str, error: JobError,
             history: list[tuple[int, float]] = (), cancelled: bool = False) -> bool:
        state = JobState.CANCELLED if cancelled else JobState.FAILED
        return self._end(job_id, token, state, error=error.model_dump_json(),
                         partial_history=json.dumps(list(history)))

    def fail_unclaimed(self, job_id: str, error: JobError) -> None:
        """Fail a job that never ran, for a message the worker cannot run at all; a job that
        another delivery claimed (or a cancel ended) meanwhile is left as it is."""
        self.scripts["fail_unclaimed"](keys=[job_key(job_id)],
                             args=[repr(time.time()), error.model_dump_json(), self.ttl,
                                   events_channel(job_id)])

    def fail_running(self, job_id: str, error: JobError, attempt: str = "") -> None:
        """Fail a running job whose process was killed (the hard time limit). With ``attempt``
        (see ``attempt_token``), only while that attempt is the job's current one: the lease
        of a stuck attempt may have lapsed and another attempt be running it by now."""
        key = job_key(job_id)
        state, token = self.redis.hmget(key, "state", "token")
        if state != JobState.RUNNING.value or not (token or "").startswith(attempt):
            return
        self._end(job_id, token, JobState.FAILED, error=error.model_dump_json())

    def _end(self, job_id: str, token: str, state: JobState, pipeline: Pipeline | None = None,
             **fields: str) -> Any:
        """End this attempt of a running job: True when it was this attempt's (with a
        ``pipeline``, that is its result)."""
        args: list[Any] = [job_id, token, self.ttl, events_channel(job_id), state.value,
                           repr(time.time())]
        for name, value in fields.items():
            args += [name, value]
        done = self.scripts["finish"](keys=[job_key(job_id), lease_key(job_id), RUNNING],
                                      args=args, client=pipeline)
        return done if pipeline is not None else bool(done)

    def reap(self) -> list[str]:
        """Mark queued again the running jobs whose lease lapsed (ending those whose cancel
        was asked for as cancelled); returns the ids that need a message sent, after which
        the caller must call ``requeued``. Sending one twice (two reapers, or a retry after a
        failed send) is harmless: only one delivery claims it. One round trip for all."""
        job_ids = list(self.redis.smembers(RUNNING))
        pipe = self.redis.pipeline(transaction=False)
        now = repr(time.time())
        for job_id in job_ids:
            self.scripts["reap"](keys=[job_key(job_id), lease_key(job_id), RUNNING],
                                 args=[job_id, self.ttl, events_channel(job_id), now],
                                 client=pipe)
        outcomes = pipe.execute() if job_ids else []
        return [job_id for job_id, outcome in zip(job_ids, outcomes, strict=True)
                if outcome == "requeue"]

    def requeued(self, job_ids: list[str]) -> None:
        """The lapsed jobs' messages are sent: they leave the running set (unless already
        claimed again)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            self.scripts["requeued"](keys=[job_key(job_id), RUNNING], args=[job_id], client=pipe)
            pipe.publish(events_channel(job_id), "requeued")
        pipe.execute()

    def publish(self, job_id: str, event: str) -> None:
        self.redis.publish(events_channel(job_id), event)
