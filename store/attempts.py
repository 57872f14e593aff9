"""Attempts at running a job, the worker's side of the store: claim, renew the lease,
report progress, end, and the reaper's re-queues and orphans. Every state change checks the
attempt's token, so a late or duplicate delivery never records a second result.
``JobStore`` (jobs.py) joins it with ``JobRecords``."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from redis import Redis, RedisError
from redis.client import Pipeline

from polyfit.models.job import FitResult, JobError, JobState, Progress
from polyfit.models.request import APPROACHES, FitRequest
from polyfit.store import stats
from polyfit.store.keys import (
    BROKER_UNACKED,
    RUNNING,
    broker_lists,
    events_channel,
    index_key,
    job_key,
    lease_key,
)
from polyfit.store.records import StoreAttributes


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


class JobAttempts(StoreAttributes):
    """Runs jobs' attempts as a worker and its reaper do."""

    _lapsed_since: dict[str, float]  # job id → when ``reap`` saw its lease lapsed

    def claim(self, job_id: str, token: str, worker: str) -> Claim:
        """Take a job to run: its outcome, 'claimed' or why not ('leased', 'missing', a
        final state), and when claimed the stored request (the JSON its record holds, the
        only copy)."""
        return Claim.of(self.queue_claim(self.redis, job_id, token, worker))

    def queue_claim(self, client: Redis | Pipeline, job_id: str, token: str,
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

    def progress(self, job_id: str, token: str, progress: Progress,
                 pipeline: Pipeline | None = None) -> Any:
        """Record and publish the progress of this attempt of a running job: an attempt that
        lost the job (or a job whose record expired) writes nothing. True when written (with
        a ``pipeline``, that is its result)."""
        return self.scripts["progress"](keys=[job_key(job_id)],
                                        args=[token, progress.model_dump_json(),
                                              events_channel(job_id)],
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
             history: Sequence[tuple[int, float]] = (), cancelled: bool = False) -> bool:
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
        except RedisError:  # the owners could not renew either
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

    def whereabouts(self, job_ids: list[str]) -> list[tuple[str, str, str]]:
        """(id, state, queue) of each job whose record still exists, in one round trip: what
        sending its message again needs (the message carries the id alone)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(job_key(job_id), "state", "queue")
        return [(job_id, state, queue) for job_id, (state, queue)
                in zip(job_ids, pipe.execute() if job_ids else [], strict=True)
                if state is not None]

    def resent(self, job_ids: list[str]) -> None:
        """Count the new message of each job sent again (``requeues``) and announce it."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            self.scripts["resent"](keys=[job_key(job_id)], args=[events_channel(job_id)],
                                   client=pipe)
        pipe.execute()
