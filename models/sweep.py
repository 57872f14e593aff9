"""Sweeps: one request run for many learning rates × seeds as one batched job.

Redis layout, beside the job store's:

- ``polyfit:sweep:<id>``: a hash — ``sweep_id``, ``queue``, ``request`` (the SweepRequest
  JSON), ``members`` (JSON list of member job ids, learning-rate major), ``submitted_at``;
  the worker adds ``worker``, ``device``, ``started_at``, ``attempts``, ``fit_seconds``,
  ``progress``.
- ``polyfit:sweeps``: a sorted set of sweep ids by submission time.
- Each member is an ordinary job (``polyfit:job:<id>`` with ``sweep_id`` set): the sweep
  worker claims, leases and finishes every member with the job store's own scripts, so a
  member's record reads like a single job's. The sweep's state is derived from its
  members' states; it is never stored, so it cannot go stale.

If the worker running a sweep dies, its members' leases lapse and the reaper re-queues each
member as a single ``polyfit.fit`` job: the sweep still finishes (member by member) with the
same results, and a late redelivery of the sweep message finds nothing left to claim.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.job import FitResult, JobError, JobRecord, JobState, iso_time
from models.request import FitRequest
from models.store import (
    JOBS,
    PREFIX,
    JobNotFound,
    JobStore,
    events_channel,
    job_key,
    lease_key,
)

MAX_MEMBERS = 16_384
MAX_ELEMENTS = 2**28  # members × points: the (K, n) residual stays ≤ 1 GiB in float32


def sweep_key(sweep_id: str) -> str:
    return f"{PREFIX}:sweep:{sweep_id}"


class SweepNotFound(KeyError):
    """No sweep with this id exists (or it expired)."""


class SweepRequest(BaseModel):
    """A base request and the learning rates and seeds to cross it with.

    Omitted learning rates mean the base request's (its default for the approach); omitted
    seeds mean the base's seed, or one drawn now so that the sweep can be repeated.
    """

    model_config = ConfigDict(extra="forbid")

    base: FitRequest
    learning_rates: list[float] | None = Field(None, min_length=1)
    seeds: list[int] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _fill(self) -> SweepRequest:
        if self.base.approach == "exact":
            raise ValueError("approach: exact is closed-form; it has no learning rate or seed "
                             "to sweep")
        self.learning_rates = self.learning_rates or [self.base.learning_rate]
        self.seeds = self.seeds or [self.base.seed if self.base.seed is not None
                                    else secrets.randbelow(2**63)]
        for name, values in (("learning_rates", self.learning_rates), ("seeds", self.seeds)):
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: each value may appear only once")
        if any(not 0 < lr < float("inf") for lr in self.learning_rates):
            raise ValueError("learning_rates: each must be a finite number greater than 0")
        if any(not 0 <= seed < 2**63 for seed in self.seeds):
            raise ValueError("seeds: each must be in [0, 2^63)")
        size = len(self.learning_rates) * len(self.seeds)
        if size > MAX_MEMBERS:
            raise ValueError(f"learning_rates × seeds gives {size} members, more than the "
                             f"limit {MAX_MEMBERS}")
        points = len(self.base.data.x) if self.base.data else self.base.n_points
        if size * points > MAX_ELEMENTS:
            raise ValueError(f"{size} members × {points} points exceeds the limit "
                             f"{MAX_ELEMENTS} per sweep; split it into smaller sweeps")
        return self

    @property
    def queue(self) -> str:
        return self.base.queue

    def members(self) -> list[FitRequest]:
        """One request per (learning rate, seed), learning-rate major."""
        return [self.base.model_copy(update={"learning_rate": lr, "seed": seed})
                for lr in self.learning_rates for seed in self.seeds]


class SweepMember(BaseModel):
    """One member as the sweep lists it."""

    job_id: str
    learning_rate: float
    seed: int
    state: JobState
    final_loss: float | None = None
    error: JobError | None = None


class SweepRecord(BaseModel):
    """A sweep as read back: its request, its batch run, and its members best first."""

    sweep_id: str
    state: JobState
    queue: str
    request: dict[str, Any]
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    worker: str | None = None
    device: str | None = None
    attempts: int = 0
    fit_seconds: float | None = None
    progress: dict[str, Any] | None = None
    members: list[SweepMember]

    def counts(self) -> dict[str, int]:
        """How many members are in each state."""
        return {state.value: sum(m.state == state for m in self.members) for state in JobState}

    @property
    def best(self) -> SweepMember | None:
        first = self.members[0] if self.members else None
        return first if first and first.state == JobState.SUCCEEDED else None

    def to_document(self) -> dict[str, Any]:
        """The JSON document ``polyfit-client sweep-result --json`` prints."""
        return {
            "sweep_id": self.sweep_id,
            "state": self.state.value,
            "queue": self.queue,
            "request": self.request,
            "counts": self.counts(),
            "members": [m.model_dump(mode="json") for m in self.members],
            "best": self.best.model_dump(mode="json") if self.best else None,
            "device": self.device,
            "worker": self.worker,
            "attempts": self.attempts,
            "fit_seconds": self.fit_seconds,
            "progress": self.progress,
            "submitted_at": iso_time(self.submitted_at),
            "started_at": iso_time(self.started_at),
            "finished_at": iso_time(self.finished_at),
        }


def sweep_state(states: list[JobState]) -> JobState:
    """Queued until a member starts, running until all finish; then succeeded if any member
    did, else failed if any failed, else cancelled."""
    if all(s.finished for s in states):
        if JobState.SUCCEEDED in states:
            return JobState.SUCCEEDED
        return JobState.FAILED if JobState.FAILED in states else JobState.CANCELLED
    if all(s == JobState.QUEUED for s in states):
        return JobState.QUEUED
    return JobState.RUNNING


def _rank(member: SweepMember) -> tuple[int, float]:
    """Best first: succeeded by final loss, then the unfinished, then failed and cancelled."""
    if member.state == JobState.SUCCEEDED:
        return (0, member.final_loss)
    return (1 if not member.state.finished else 2, 0.0)


class SweepStore(JobStore):
    """The job store plus sweeps: creating them with their member jobs, reading them back,
    and the batched claim / renew / finish the sweep worker applies to all members."""

    # --- client side ---

    def create_sweep(self, sweep: SweepRequest,
                     sweep_id: str | None = None) -> tuple[str, list[str]]:
        """Record a sweep and its queued member jobs; returns the sweep id and member ids."""
        sweep_id = sweep_id or uuid.uuid4().hex
        now = time.time()
        members = sweep.members()
        member_ids = [uuid.uuid4().hex for _ in members]
        pipe = self.redis.pipeline(transaction=True)
        for job_id, request in zip(member_ids, members, strict=True):
            pipe.hset(job_key(job_id), mapping={
                "job_id": job_id, "state": JobState.QUEUED.value, "queue": request.queue,
                "request": request.model_dump_json(), "submitted_at": repr(now),
                "attempts": 0, "requeues": 0, "sweep_id": sweep_id})
        pipe.zadd(JOBS, dict.fromkeys(member_ids, now))
        pipe.hset(sweep_key(sweep_id), mapping={
            "sweep_id": sweep_id, "queue": sweep.queue, "request": sweep.model_dump_json(),
            "members": json.dumps(member_ids), "submitted_at": repr(now), "attempts": 0})
        pipe.execute()
        return sweep_id, member_ids

    def delete_sweep(self, sweep_id: str) -> None:
        """Remove a sweep and its members (when its message could not be sent)."""
        member_ids = self.member_ids(sweep_id)
        pipe = self.redis.pipeline()
        for job_id in member_ids:
            pipe.delete(job_key(job_id), lease_key(job_id))
        if member_ids:
            pipe.zrem(JOBS, *member_ids)
        pipe.delete(sweep_key(sweep_id))
        pipe.execute()

    def is_sweep(self, sweep_id: str) -> bool:
        return bool(self.redis.exists(sweep_key(sweep_id)))

    def member_ids(self, sweep_id: str) -> list[str]:
        raw = self.redis.hget(sweep_key(sweep_id), "members")
        if raw is None:
            raise SweepNotFound(sweep_id)
        return json.loads(raw)

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        """The sweep with its members' current states and final losses, best first. A sweep
        whose members have all expired is gone too: it is deleted (it has no TTL of its own
        when no batch ended it, e.g. when its members ran as single jobs)."""
        fields = self.redis.hgetall(sweep_key(sweep_id))
        records = self.members(json.loads(fields["members"])) if "members" in fields else []
        if not records:
            self.redis.delete(sweep_key(sweep_id))
            raise SweepNotFound(sweep_id)
        members = sorted((_member(r) for r in records), key=_rank)
        states = [m.state for m in members]
        state = sweep_state(states)
        finished = [r.finished_at for r in records if r.finished_at is not None]
        return SweepRecord(
            sweep_id=sweep_id, state=state, queue=fields["queue"],
            request=json.loads(fields["request"]), submitted_at=float(fields["submitted_at"]),
            started_at=_float(fields.get("started_at")),
            finished_at=max(finished) if state.finished and finished else None,
            worker=fields.get("worker"), device=fields.get("device"),
            attempts=int(fields.get("attempts", 0)), fit_seconds=_float(fields.get("fit_seconds")),
            progress=json.loads(fields["progress"]) if "progress" in fields else None,
            members=members)

    def members(self, member_ids: list[str]) -> list[JobRecord]:
        """The member job records, in the order given (expired ones are left out)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in member_ids:
            pipe.hgetall(job_key(job_id))
        return [JobRecord.from_hash(fields) for fields in pipe.execute() if fields]

    def cancel_sweep(self, sweep_id: str) -> dict[str, int]:
        """Cancel every member: queued ones at once, running ones between steps."""
        outcomes: dict[str, int] = {}
        for job_id in self.member_ids(sweep_id):
            try:
                outcome = self.cancel(job_id)
            except JobNotFound:
                outcome = "missing"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if "requested" not in outcomes:  # no batch will end it
            self.expire_sweep(sweep_id)
        return outcomes

    # --- worker side: one pipeline for all members ---

    def claim_members(self, member_ids: list[str], token: str, worker: str) -> list[str]:
        """Claim each member for this attempt; returns each one's outcome (see ``claim``)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in member_ids:
            self.claim(job_id, token, worker, client=pipe)
        return pipe.execute()

    def start_sweep(self, sweep_id: str, worker: str, device: str,
                    member_ids: list[str]) -> None:
        """Mark the batch started, and the device of each member it runs."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(sweep_key(sweep_id), mapping={"worker": worker, "device": device,
                                                "started_at": repr(time.time())})
        pipe.hincrby(sweep_key(sweep_id), "attempts", 1)
        pipe.hdel(sweep_key(sweep_id), "fit_seconds", "progress")
        for job_id in member_ids:
            pipe.hset(job_key(job_id), "device", device)
        pipe.execute()

    def member_states(self, member_ids: list[str]) -> list[JobState]:
        """Each member's state, cheaply (for waiting); an expired member counts as failed."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in member_ids:
            pipe.hget(job_key(job_id), "state")
        return [JobState(s) if s else JobState.FAILED for s in pipe.execute()]

    def progress_of(self, sweep_id: str) -> dict[str, Any] | None:
        """The batch's last progress: step, steps, best_loss, active members."""
        raw = self.redis.hget(sweep_key(sweep_id), "progress")
        return json.loads(raw) if raw else None

    def fail_members_unclaimed(self, member_ids: list[str], error: JobError) -> None:
        """Fail the members of a sweep whose message the worker cannot run at all."""
        for job_id in member_ids:
            self.fail_unclaimed(job_id, error)

    def cancels_requested(self, member_ids: list[str]) -> list[bool]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in member_ids:
            pipe.hget(job_key(job_id), "cancel")
        return [flag == "1" for flag in pipe.execute()]

    def sweep_progress(self, sweep_id: str, token: str, step: int, steps: int,
                       best_loss: float | None, active: int,
                       member_losses: dict[str, float] | None = None) -> None:
        """Publish the batch's progress, and each listed member's (as ``progress``, for this
        attempt's members only), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(sweep_key(sweep_id), "progress", json.dumps(
            {"step": step, "steps": steps, "best_loss": best_loss, "active": active}))
        for job_id, loss in (member_losses or {}).items():
            self.progress(job_id, token, step, steps, loss, pipe)
        pipe.execute()

    def finish_members(self, token: str, results: dict[str, FitResult],
                       failures: dict[str, tuple[JobError, list, bool]]) -> None:
        """Record each member's outcome: a result, or (error, history so far, cancelled)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id, result in results.items():
            self._end(job_id, token, JobState.SUCCEEDED, pipe, result=result.model_dump_json())
        for job_id, (error, history, cancelled) in failures.items():
            state = JobState.CANCELLED if cancelled else JobState.FAILED
            self._end(job_id, token, state, pipe, error=error.model_dump_json(),
                      partial_history=json.dumps(list(history)))
        pipe.execute()

    def finish_sweep(self, sweep_id: str, fit_seconds: float) -> None:
        """Record the batch's time; the sweep expires with its members (POLYFIT_RESULT_TTL)."""
        key = sweep_key(sweep_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, "fit_seconds", repr(fit_seconds))
        self.expire_sweep(sweep_id, pipe)
        pipe.execute()
        self.redis.publish(events_channel(sweep_id), "finished")

    def expire_sweep(self, sweep_id: str, client: Any = None) -> None:
        """Give the sweep the result TTL its finished members have (if one is set): when its
        batch ends, and when no batch will run (its members cancelled or refused)."""
        if self.ttl:
            (client or self.redis).expire(sweep_key(sweep_id), self.ttl)


def _member(record: JobRecord) -> SweepMember:
    return SweepMember(job_id=record.job_id, learning_rate=record.request["learning_rate"],
                       seed=record.request["seed"], state=record.state,
                       final_loss=record.result.final_loss if record.result else None,
                       error=record.error)


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)
