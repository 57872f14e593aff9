"""SweepStore: a sweep's record and its members' job records, read and changed together.

If the worker running a sweep dies, its members' leases lapse and the reaper re-queues each
member as a single ``polyfit.fit`` job: the sweep still finishes (member by member) with the
same results, and a late redelivery of the sweep message finds nothing left to claim. The
sweep worker claims, leases and finishes every member with the job store's own scripts, so a
member's record reads like a single job's.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from redis.client import Pipeline

from polyfit.models.job import FitResult, JobError, JobRecord, JobState, Progress
from polyfit.models.sweep import SweepMember, SweepRecord, SweepRequest, best_first, sweep_state
from polyfit.store import stats
from polyfit.store.jobs import Claim, JobStore, NoSuchJob
from polyfit.store.keys import events_channel, job_key, sweep_key


class NoSuchSweep(KeyError):
    """No sweep with this id exists (or it expired)."""


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
            self.add_queued(pipe, job_id, request, now, sweep_id)
        pipe.hset(sweep_key(sweep_id), mapping={
            "sweep_id": sweep_id, "queue": sweep.queue, "request": sweep.model_dump_json(),
            "members": json.dumps(member_ids), "submitted_at": repr(now), "attempts": 0})
        pipe.execute()
        return sweep_id, member_ids

    def delete_sweep(self, sweep_id: str) -> int:
        """Remove a sweep and its members, whatever their state (running ones stop, as
        ``delete`` says); returns how many members were still held."""
        member_ids = self.member_ids(sweep_id)
        held = sum(state != "missing" for state in self.delete(member_ids))
        self.redis.delete(sweep_key(sweep_id))
        self.redis.publish(events_channel(sweep_id), "deleted")
        return held

    def is_sweep(self, sweep_id: str) -> bool:
        return bool(self.redis.exists(sweep_key(sweep_id)))

    def member_ids(self, sweep_id: str) -> list[str]:
        raw = self.redis.hget(sweep_key(sweep_id), "members")
        if raw is None:
            raise NoSuchSweep(sweep_id)
        return json.loads(raw)

    def stored_sweep(self, sweep_id: str) -> tuple[list[str], str]:
        """The sweep's member ids and its request's JSON (the request's only copy)."""
        members, request = self.redis.hmget(sweep_key(sweep_id), "members", "request")
        if members is None:
            raise NoSuchSweep(sweep_id)
        return json.loads(members), request

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        """The sweep with its members' current states and final losses, best first. A sweep
        whose members have all expired is gone too: it is deleted (it has no TTL of its own
        when no batch ended it, e.g. when its members ran as single jobs)."""
        fields = self.redis.hgetall(sweep_key(sweep_id))
        records = self.get_many(json.loads(fields["members"])) if "members" in fields else []
        if not records:
            self.redis.delete(sweep_key(sweep_id))
            raise NoSuchSweep(sweep_id)
        members = sorted((_member(r) for r in records), key=best_first)
        states = [m.state for m in members]
        state = sweep_state(states)
        finished = [r.finished_at for r in records if r.finished_at is not None]
        return SweepRecord(
            sweep_id=sweep_id, state=state, queue=fields["queue"],
            request=json.loads(fields["request"]), submitted_at=float(fields["submitted_at"]),
            started_at=_float(fields.get("started_at")),
            finished_at=max(finished) if state.finished and finished else None,
            expires_at=_float(fields.get("expires_at")),
            worker=fields.get("worker"), device=fields.get("device"),
            attempts=int(fields.get("attempts", 0)), fit_seconds=_float(fields.get("fit_seconds")),
            progress=json.loads(fields["progress"]) if "progress" in fields else None,
            members=members)

    def cancel_sweep(self, sweep_id: str) -> dict[str, int]:
        """Cancel every member: queued ones at once, running ones between steps."""
        outcomes: dict[str, int] = {}
        for job_id in self.member_ids(sweep_id):
            try:
                outcome = self.cancel(job_id)
            except NoSuchJob:
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
            self.queue_claim(pipe, job_id, token, worker)
        return [Claim.of(reply).outcome for reply in pipe.execute()]

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
            self.progress(job_id, token, Progress(step=step, steps=steps, loss=loss), pipe)
        pipe.execute()

    def finish_members(self, token: str, results: dict[str, FitResult],
                       failures: dict[str, tuple[JobError, list, bool]],
                       approach: str) -> set[str]:
        """Record each member's outcome: a result, or (error, history so far, cancelled);
        returns the ids recorded (those still this attempt's)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id, result in results.items():
            self.end(job_id, token, JobState.SUCCEEDED, pipe, result=result.model_dump_json())
        for job_id, (error, history, cancelled) in failures.items():
            state = JobState.CANCELLED if cancelled else JobState.FAILED
            self.end(job_id, token, state, pipe, error=error.model_dump_json(),
                     partial_history=json.dumps(list(history)))
        job_ids = [*results, *failures]
        recorded = {job_id for job_id, done in zip(job_ids, pipe.execute(), strict=True)
                    if done}
        for job_id, result in results.items():
            if job_id in recorded:
                stats.observe_fit(pipe, approach, result)
        pipe.execute()
        return recorded

    def finish_sweep(self, sweep_id: str, fit_seconds: float) -> None:
        """Record the batch's time; the sweep expires with its members (POLYFIT_RESULT_TTL)."""
        key = sweep_key(sweep_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, "fit_seconds", repr(fit_seconds))
        self.expire_sweep(sweep_id, pipe)
        pipe.execute()
        self.redis.publish(events_channel(sweep_id), "finished")

    def expire_sweep(self, sweep_id: str, pipeline: Pipeline | None = None) -> None:
        """Give the sweep the result TTL its finished members have (if one is set): when its
        batch ends, and when no batch will run (its members cancelled or refused)."""
        if self.ttl:
            client = pipeline or self.redis
            client.expire(sweep_key(sweep_id), self.ttl)
            client.hset(sweep_key(sweep_id), "expires_at", repr(time.time() + self.ttl))


def _member(record: JobRecord) -> SweepMember:
    result = record.result
    statistics = result.statistics if result else None
    return SweepMember(job_id=record.job_id, degree=record.request["degree"],
                       learning_rate=record.request.get("learning_rate"),
                       seed=record.request.get("seed"), state=record.state,
                       final_loss=result.final_loss if result else None,
                       aic=statistics.aic if statistics else None,
                       bic=statistics.bic if statistics else None, error=record.error)


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)
