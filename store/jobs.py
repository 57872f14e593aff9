"""JobStore: job records in Redis, with the atomic state changes the client and worker share.

A running job holds a lease (``polyfit:lease:<id>``) that its worker renews. A job whose
lease lapsed (its worker died) is put back in the queue by ``reap``; every state change
checks the attempt's token, so a late or duplicate delivery never records a second result.
The keys are described in ``keys.py``; the state changes are the scripts in ``lua/``.
"""

from __future__ import annotations

import heapq
import json
import time
import uuid
from collections.abc import Iterator
from itertools import islice
from typing import Any, NamedTuple

import redis
from redis.client import Pipeline

from polyfit.models.job import FINISHED_STATES, FitResult, JobError, JobRecord, JobState
from polyfit.models.request import APPROACHES, FitRequest
from polyfit.models.settings import Settings
from polyfit.store import scripts, stats
from polyfit.store.keys import (
    BROKER_UNACKED,
    JOBS,
    RUNNING,
    broker_lists,
    events_channel,
    index_key,
    job_key,
    lease_key,
)


class Claim(NamedTuple):
    outcome: str
    request: str | None  # the stored request's JSON, when claimed

    @classmethod
    def of(cls, reply: list[str]) -> Claim:
        """The claim script's reply: ``[outcome]``, or ``[outcome, request]`` when claimed."""
        return cls(reply[0], reply[1] if len(reply) > 1 else None)


def attempt_token(worker: str, pid: int) -> str:
    """The start of the token of an attempt run by process ``pid`` of ``worker``: what the
    worker's main process, which knows only those two, can tell its own attempts by."""
    return f"{worker}/{pid}/"


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


class JobStore:
    """Reads and changes job records; the one place that knows the Redis layout."""

    def __init__(self, redis_client: redis.Redis, settings: Settings | None = None) -> None:
        self.redis = redis_client
        self.settings = settings or Settings()
        self.scripts = scripts.register(redis_client)
        self._lapsed_since: dict[str, float] = {}  # job id → when ``reap`` saw its lease lapsed

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

    # --- worker side ---

    def claim(self, job_id: str, token: str, worker: str) -> Claim:
        """Take a job to run: its outcome, 'claimed' or why not ('leased', 'missing', a
        final state), and when claimed the stored request (the JSON its record holds, the
        only copy)."""
        return Claim.of(self.queue_claim(self.redis, job_id, token, worker))

    def queue_claim(self, client: redis.Redis | Pipeline, job_id: str, token: str,
                    worker: str) -> Any:
        """The claim script on ``client``: its reply, or queued in a pipeline (whose result
        for it ``Claim.of`` reads)."""
        return self.scripts["claim"](
            keys=[job_key(job_id), lease_key(job_id), RUNNING],
            args=[job_id, token, int(self.settings.lease_seconds * 1000), repr(time.time()),
                  worker, self.settings.max_attempts, events_channel(job_id), self.ttl],
            client=client)

    def started(self, job_id: str, device: str, request: FitRequest | None = None) -> None:
        """Record the device a claimed job runs on and, when the worker drew its seed, the
        request as run (a re-delivery then runs the same seed)."""
        fields = {"device": device}
        if request is not None:
            fields["request"] = request.model_dump_json()
        self.redis.hset(job_key(job_id), mapping=fields)

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

    def succeed(self, job_id: str, token: str, result: FitResult, approach: str) -> bool:
        """Record this attempt's result (and its seconds, for the metrics)."""
        done = self.end(job_id, token, JobState.SUCCEEDED, result=result.model_dump_json())
        if done:
            pipe = self.redis.pipeline(transaction=False)
            stats.observe_fit(pipe, approach, result)
            pipe.execute()
        return done

    def announce(self, worker: str) -> None:
        """This worker is alive (for the metrics)."""
        pipe = self.redis.pipeline(transaction=False)
        stats.announce(pipe, worker)
        pipe.execute()

    def fail(self, job_id: str, token: str, error: JobError,
             history: list[tuple[int, float]] = (), cancelled: bool = False) -> bool:
        state = JobState.CANCELLED if cancelled else JobState.FAILED
        return self.end(job_id, token, state, error=error.model_dump_json(),
                         partial_history=json.dumps(list(history)))

    def fail_unclaimed(self, job_id: str, error: JobError) -> None:
        """Fail a job that never ran, for a message the worker cannot run at all; a job that
        another delivery claimed (or a cancel ended) meanwhile is left as it is."""
        self.scripts["fail_unclaimed"](keys=[job_key(job_id)],
                             args=[repr(time.time()), error.model_dump_json(), self.ttl,
                                   events_channel(job_id), job_id])

    def fail_running(self, job_id: str, error: JobError, attempt: str = "") -> None:
        """Fail a running job whose process was killed (the hard time limit). With ``attempt``
        (see ``attempt_token``), only while that attempt is the job's current one: the lease
        of a stuck attempt may have lapsed and another attempt be running it by now."""
        key = job_key(job_id)
        state, token = self.redis.hmget(key, "state", "token")
        if state != JobState.RUNNING.value or not (token or "").startswith(attempt):
            return
        self.end(job_id, token, JobState.FAILED, error=error.model_dump_json())

    def end(self, job_id: str, token: str, state: JobState, pipeline: Pipeline | None = None,
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

    def reap(self, grace: float = 0.0) -> list[str]:
        """Mark queued again the running jobs whose lease has been lapsed for ``grace``
        seconds, as this store saw it (ending those whose cancel was asked for as
        cancelled); returns the ids that need a message sent, after which the caller must
        call ``requeued``. The grace spares a live worker that Redis lost for a moment
        (restarted, unreachable, full): it renews its leases as soon as Redis is back, and
        a round that Redis failed starts the grace again. Sending one twice (two reapers, or
        a retry after a failed send) is harmless: only one delivery claims it. A fixed
        number of round trips, whatever the count."""
        try:
            job_ids = self._lapsed_for(grace)
            pipe = self.redis.pipeline(transaction=False)
            now = repr(time.time())
            for job_id in job_ids:
                self.scripts["reap"](keys=[job_key(job_id), lease_key(job_id), RUNNING],
                                     args=[job_id, self.ttl, events_channel(job_id), now],
                                     client=pipe)
            outcomes = pipe.execute() if job_ids else []
        except redis.RedisError:  # the owners could not renew either
            self._lapsed_since.clear()
            raise
        return [job_id for job_id, outcome in zip(job_ids, outcomes, strict=True)
                if outcome == "requeue"]

    def _lapsed_for(self, grace: float) -> list[str]:
        """The running jobs whose lease this store has seen lapsed for ``grace`` seconds."""
        running = list(self.redis.smembers(RUNNING))
        pipe = self.redis.pipeline(transaction=False)
        for job_id in running:
            pipe.exists(lease_key(job_id))
        seen = time.monotonic()
        self._lapsed_since = {job_id: self._lapsed_since.get(job_id, seen) for job_id, alive
                              in zip(running, pipe.execute() if running else [], strict=True)
                              if not alive}
        return [job_id for job_id, since in self._lapsed_since.items() if seen - since >= grace]

    def requeued(self, job_ids: list[str]) -> None:
        """The lapsed jobs' messages are sent: they leave the running set (unless already
        claimed again)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            self.scripts["requeued"](keys=[job_key(job_id), RUNNING], args=[job_id], client=pipe)
            pipe.publish(events_channel(job_id), "requeued")
        pipe.execute()

    def orphans(self, older_than: float, limit: int = 1000) -> list[str]:
        """Queued jobs submitted more than ``older_than`` seconds ago whose message is in no
        queue and held by no worker (purged, deleted by hand, lost with Redis's memory): the
        ids to send again (a sweep's member goes as a single job). One that a worker takes
        while this looks may be named too: sending it again is harmless, the claim runs a
        job once."""
        cutoff = time.time() - older_than
        pipe = self.redis.pipeline(transaction=False)
        for approach in APPROACHES:
            pipe.zrangebyscore(index_key(JobState.QUEUED.value, approach), "-inf", cutoff,
                               start=0, num=limit)
        candidates = [job_id for job_ids in pipe.execute() for job_id in job_ids][:limit]
        for job_id in candidates:
            pipe.hmget(job_key(job_id), "state", "queue", "sweep_id")
        messages: dict[str, dict[str, list[str]]] = {}  # queue → message id → its job ids
        for job_id, (state, queue, sweep_id) in zip(candidates, pipe.execute(), strict=True):
            if state == JobState.QUEUED.value:
                messages.setdefault(queue, {}).setdefault(sweep_id or job_id, []).append(job_id)
        orphaned = []
        for queue, by_message in messages.items():
            missing = self.scripts["unsent"](keys=[*broker_lists(queue), BROKER_UNACKED],
                                             args=list(by_message))
            orphaned += [job_id for message_id in missing for job_id in by_message[message_id]]
        return orphaned

    def resent(self, job_ids: list[str]) -> None:
        """Count the new message of each job sent again (``requeues``) and announce it."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            self.scripts["resent"](keys=[job_key(job_id)], args=[events_channel(job_id)],
                                   client=pipe)
        pipe.execute()

    def publish(self, job_id: str, event: str) -> None:
        self.redis.publish(events_channel(job_id), event)
