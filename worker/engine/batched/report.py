"""BatchReport: the Report of a batch — each member's loss history, and who has stopped.

A batched fit calls ``due(t)`` every step (cheap, no device sync) and ``record(t, losses)``
at the recorded steps with the (K,) losses of all members. A member whose loss is NaN or
infinite is diverged, with the same message and history a single job would have; members
whose cancel was asked for stop at the next poll, and all stop past the time limit. The fit
freezes the rows ``take_stopped`` hands it, so stopped members never disturb the others.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from polyfit.worker.engine.fit import Cancelled, Diverged, FitStopped, TimeLimitExceeded


@dataclass
class BatchReport:
    """Progress, cancelling and the time limit for K members fitted together."""

    size: int
    every: int
    steps: int
    on_progress: Callable[[int, list[float | None]], None] = lambda step, losses: None
    cancels_requested: Callable[[], set[int]] = set
    time_limit: float | None = None
    poll_seconds: float = 0.5
    histories: list[list[tuple[int, float]]] = field(default_factory=list)
    stopped: dict[int, FitStopped] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    POLL_EVERY = 64

    def __post_init__(self) -> None:
        self.histories = [[] for _ in range(self.size)]
        self._fresh: list[int] = []
        self._last_poll = time.perf_counter()

    @property
    def changed(self) -> bool:
        """Whether members stopped since the last ``take_stopped``."""
        return bool(self._fresh)

    @property
    def all_stopped(self) -> bool:
        return len(self.stopped) == self.size

    def take_stopped(self) -> list[int]:
        """The rows that stopped since the last call, for the fit to freeze."""
        rows, self._fresh = self._fresh, []
        return rows

    def due(self, t: int) -> bool:
        if t % self.every == self.every - 1:
            return True
        if t % self.POLL_EVERY == self.POLL_EVERY - 1:
            self.poll(t)
        return False

    def record(self, t: int, losses: torch.Tensor | list[float]) -> None:
        """Append each running member's loss at step t; stop those that diverged."""
        values = losses.tolist() if isinstance(losses, torch.Tensor) else list(losses)
        reported: list[float | None] = []
        for row, value in enumerate(values):
            if row in self.stopped:
                reported.append(None)
                continue
            if not math.isfinite(value):
                self.stop(row, Diverged(f"diverged at step {t} (loss={value}); "
                                        "lower learning_rate", self.histories[row]))
                reported.append(None)
                continue
            self.histories[row].append((t, value))
            reported.append(value)
        self.on_progress(t, reported)
        self.poll(t)

    def stop(self, row: int, reason: FitStopped) -> None:
        if row not in self.stopped:
            self.stopped[row] = reason
            self._fresh.append(row)

    def poll(self, t: int) -> None:
        """Stop the members whose cancel was asked for, or all of them past the time limit."""
        now = time.perf_counter()
        if self.time_limit is not None and now - self.started > self.time_limit:
            message = (f"time limit exceeded ({self.time_limit:g} s) after "
                       f"{now - self.started:.1f} s")
            for row in range(self.size):
                self.stop(row, TimeLimitExceeded(message, self.histories[row]))
            return
        if now - self._last_poll < self.poll_seconds:
            return
        self._last_poll = now
        for row in self.cancels_requested():
            last = self.histories[row][-1][0] if self.histories[row] else 0
            self.stop(row, Cancelled(f"cancelled at step {last}", self.histories[row]))
