"""A job's record: its state, request, progress, result or error, and timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from polyfit.models.request import FitRequest, describe
from polyfit.models.statistics import FitStatistics


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


FINISHED_STATES = tuple(state.value for state in JobState if state.finished)


class FitResult(BaseModel):
    """What a finished fit produced."""

    coefficients: dict[str, float]
    initial_coefficients: dict[str, float]
    formula: str
    loss_history: list[tuple[int, float]]
    final_loss: float
    optimum_loss: float | None
    steps_run: int
    device: str
    fit_seconds: float
    compiled: bool = False  # ran as compiled graphs (POLYFIT_COMPILE)
    statistics: FitStatistics | None = None  # None in records written before it existed


PROGRESS_HISTORY = 256  # the most (step, loss) points a running job's progress carries


class Progress(BaseModel):
    """Where a running attempt is: its step and loss, the losses recorded since step 0
    (thinned to at most PROGRESS_HISTORY, the latest always kept) and the model at ``step``
    (what a dashboard draws while the job runs; a batched sweep's members carry neither)."""

    step: int
    steps: int
    loss: float
    history: list[tuple[int, float]] = []
    coefficients: dict[str, float] | None = None


def thinned(history: list[tuple[int, float]], most: int = PROGRESS_HISTORY
            ) -> list[tuple[int, float]]:
    """Every k-th point of ``history`` and its last, at most ``most`` in all (a running
    job's progress; the CLI's history table)."""
    if len(history) <= most:
        return list(history)
    stride = -(-len(history) // (most - 1))
    return [*history[:-1:stride], history[-1]]


class JobError(BaseModel):
    type: str
    message: str


class RunRecord(BaseModel):
    """What a job and a sweep record alike: the request, its queue and state, and where and
    when it ran."""

    state: JobState
    queue: str
    request: dict[str, Any]
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    worker: str | None = None
    device: str | None = None
    attempts: int = 0
    expires_at: float | None = None  # when a finished record goes (POLYFIT_RESULT_TTL)


class JobRecord(RunRecord):
    """One job as stored in Redis (``polyfit:job:<id>``)."""

    job_id: str
    requeues: int = 0
    progress: Progress | None = None
    result: FitResult | None = None
    error: JobError | None = None
    partial_history: list[tuple[int, float]] = []
    sweep_id: str | None = None

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> JobRecord:
        """Build a record from the Redis hash, whose JSON fields are stored as text. A hash
        that does not make a valid record (written by hand, or by an older polyfit) reads as
        a failed job whose error says why, so that one bad record breaks no listing."""
        data: dict[str, Any] = dict(fields)
        try:
            for name in ("request", "progress", "result", "error", "partial_history"):
                if name in data:
                    data[name] = json.loads(data[name])
            return cls.model_validate(data)
        except ValidationError as error:
            reason = describe(error)
        except ValueError as error:  # JSON
            reason = f"{name}: {error}"
        return cls.model_construct(
            job_id=str(fields.get("job_id", "?")), state=JobState.FAILED,
            queue=str(fields.get("queue", "?")),
            request=data["request"] if isinstance(data.get("request"), dict) else {},
            submitted_at=_number(fields.get("submitted_at")),
            error=JobError(type="UnreadableRecord", message=f"the stored record is not "
                           f"valid ({reason})"), partial_history=[])

    @property
    def fit_request(self) -> FitRequest:
        return FitRequest.model_validate(self.request)

    def to_document(self) -> dict[str, Any]:
        """The flat JSON document that ``polyfit-client --json`` prints."""
        result = self.result
        history = (result.loss_history if result else self.partial_history
                   or (self.progress.history if self.progress else []))
        return {
            "job_id": self.job_id,
            "state": self.state.value,
            "queue": self.queue,
            "request": self.request,
            "coefficients": result.coefficients if result else None,
            "initial_coefficients": result.initial_coefficients if result else None,
            "formula": result.formula if result else None,
            "loss_history": [list(point) for point in history],
            "final_loss": result.final_loss if result else None,
            "optimum_loss": result.optimum_loss if result else None,
            "steps_run": result.steps_run if result else None,
            "progress": self.progress.model_dump() if self.progress else None,
            "device": self.device,
            "worker": self.worker,
            "attempts": self.attempts,
            "requeues": self.requeues,
            "submitted_at": iso_time(self.submitted_at),
            "started_at": iso_time(self.started_at),
            "finished_at": iso_time(self.finished_at),
            "expires_at": iso_time(self.expires_at),
            "fit_seconds": result.fit_seconds if result else None,
            "compiled": result.compiled if result else None,
            "statistics": result.statistics.model_dump(mode="json")
            if result and result.statistics else None,
            "error": self.error.model_dump() if self.error else None,
            "sweep_id": self.sweep_id,
        }


def _number(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:
        return 0.0


def iso_time(timestamp: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC, to the millisecond (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
