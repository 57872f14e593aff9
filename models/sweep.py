"""Sweeps: one request run for many learning rates × seeds as one batched job.

Each member is an ordinary job; a sweep's state is derived from its members' states, never
stored, so it cannot go stale (``sweep_state``). The records live in ``polyfit.store.sweeps``.
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from polyfit.models.job import JobError, JobState, RunRecord, iso_time
from polyfit.models.request import FitRequest

MAX_MEMBERS = 16_384
MAX_ELEMENTS = 2**28  # members × points: the (K, n) residual stays ≤ 1 GiB in float32


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


class SweepRecord(RunRecord):
    """A sweep as read back: its request, its batch run, and its members best first."""

    sweep_id: str
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


def best_first(member: SweepMember) -> tuple[int, float]:
    """Best first: succeeded by final loss, then the unfinished, then failed and cancelled."""
    if member.state == JobState.SUCCEEDED:
        return (0, member.final_loss)
    return (1 if not member.state.finished else 2, 0.0)
