"""Sweeps: one request run for many learning rates × seeds as one batched job.

Each member is an ordinary job; a sweep's state is derived from its members' states, never
stored, so it cannot go stale (``sweep_state``). The records live in ``polyfit.store.sweeps``.
"""

from __future__ import annotations

import math
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from polyfit.models.job import JobError, JobState, RunRecord, iso_time
from polyfit.models.request import FitRequest, describe

MAX_MEMBERS = 16_384
MAX_ELEMENTS = 2**28  # members × points: the (K, n) residual stays ≤ 1 GiB in float32


class SweepRequest(BaseModel):
    """A base request and the degrees, learning rates and seeds to cross it with.

    Omitted degrees mean the base request's degree; omitted learning rates the base's (its
    default for the approach); omitted seeds the base's seed, or one drawn now so that the
    sweep can be repeated. ``exact`` has no learning rate or seed: it sweeps degrees alone.
    """

    model_config = ConfigDict(extra="forbid")

    base: FitRequest
    degrees: list[int] | None = Field(None, min_length=1)
    learning_rates: list[float] | None = Field(None, min_length=1)
    seeds: list[int] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _fill(self) -> SweepRequest:
        self.degrees = self.degrees or [self.base.degree]
        if self.base.approach == "exact":
            if self.learning_rates or self.seeds:
                raise ValueError("approach: exact is closed-form; it has no learning rate or "
                                 "seed to sweep, only degrees")
            if len(self.degrees) < 2:
                raise ValueError("degrees: exact is closed-form; sweep it over two or more "
                                 "degrees (e.g. 1-9)")
        else:
            self.learning_rates = self.learning_rates or [self.base.learning_rate]
            self.seeds = self.seeds or [self.base.seed if self.base.seed is not None
                                        else secrets.randbelow(2**63)]
        axes = {"degrees": self.degrees, "learning_rates": self.learning_rates or [],
                "seeds": self.seeds or []}
        for name, values in axes.items():
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: each value may appear only once")
        if any(not 0 < lr < float("inf") for lr in axes["learning_rates"]):
            raise ValueError("learning_rates: each must be a finite number greater than 0")
        if any(not 0 <= seed < 2**63 for seed in axes["seeds"]):
            raise ValueError("seeds: each must be in [0, 2^63)")
        size = math.prod(len(values) for values in axes.values() if values)
        if size > MAX_MEMBERS:
            raise ValueError(f"degrees × learning_rates × seeds gives {size} members, more "
                             f"than the limit {MAX_MEMBERS}")
        for degree in self.degrees:
            if degree != self.base.degree:
                self._with_degree(degree)
        points = len(self.base.data.x) if self.base.data else self.base.n_points
        if size * points > MAX_ELEMENTS:
            raise ValueError(f"{size} members × {points} points exceeds the limit "
                             f"{MAX_ELEMENTS} per sweep; split it into smaller sweeps")
        return self

    @property
    def queue(self) -> str:
        return self.base.queue

    def _with_degree(self, degree: int) -> FitRequest:
        """The base at ``degree``, validated as a request of its own (the degree limit, and
        whether x^degree fits the dtype)."""
        try:
            return FitRequest.model_validate({**self.base.model_dump(), "degree": degree})
        except ValidationError as error:
            raise ValueError(f"degrees: {degree}: {describe(error)}") from None

    def members(self) -> list[FitRequest]:
        """One request per (degree, learning rate, seed), in that order of precedence."""
        bases = [self.base if degree == self.base.degree else self._with_degree(degree)
                 for degree in self.degrees]
        if self.base.approach == "exact":
            return bases
        return [base.model_copy(update={"learning_rate": lr, "seed": seed})
                for base in bases for lr in self.learning_rates for seed in self.seeds]


Criterion = Literal["final_loss", "aic", "bic"]


class SweepMember(BaseModel):
    """One member as the sweep lists it (``exact``'s have no learning rate or seed)."""

    job_id: str
    degree: int
    learning_rate: float | None
    seed: int | None
    state: JobState
    final_loss: float | None = None
    aic: float | None = None
    bic: float | None = None
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

    def ranked(self, by: Criterion) -> SweepRecord:
        """The sweep with its members best first by ``by`` (lowest first): final loss, or an
        information criterion, which charges each coefficient against the fit it buys."""
        return self.model_copy(update={"members": sorted(self.members,
                                                         key=lambda m: best_first(m, by))})

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
            "expires_at": iso_time(self.expires_at),
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


def best_first(member: SweepMember, by: Criterion = "final_loss") -> tuple[int, float]:
    """Best first: succeeded by ``by`` (those without it after), then the unfinished, then
    failed and cancelled."""
    value = getattr(member, by)
    if member.state == JobState.SUCCEEDED:
        return (0, value) if value is not None else (1, 0.0)
    return (2 if not member.state.finished else 3, 0.0)
