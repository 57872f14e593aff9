"""What every approach shares: the data (Problem), the progress callback (Report), the Fit."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from polyfit.models import FitRequest
from polyfit.models.curves import TARGETS
from polyfit.models.request import NUMPY_APPROACHES

LETTERS = "abcdefghijklmnopqrstuvwxyz"


class FitStopped(Exception):
    """A fit ended early; ``history`` keeps the losses recorded so far."""

    def __init__(self, message: str, history: list[tuple[int, float]]) -> None:
        super().__init__(message)
        self.history = history


class Diverged(FitStopped):
    pass


class Cancelled(FitStopped):
    pass


class TimeLimitExceeded(FitStopped):
    pass


@dataclass
class Problem:
    """The data to fit, on the job's device and dtype: NumPy arrays or torch tensors;
    ``scale`` = 1/σ per point when the data has standard deviations (the loss is then
    Σ((f − y)/σ)², None otherwise); whether approaches that can should run compiled
    (worker/engine/descent.py)."""

    x: np.ndarray | torch.Tensor
    y: np.ndarray | torch.Tensor
    device: str
    compiled: bool = False
    scale: np.ndarray | torch.Tensor | None = None

    def powers(self, degree: int) -> np.ndarray | torch.Tensor:
        """The columns 1, x, x², …, xⁿ, computed once per fit."""
        if isinstance(self.x, np.ndarray):
            return np.stack([self.x**k for k in range(degree + 1)], axis=1)
        exponents = torch.arange(degree + 1, device=self.x.device)
        return self.x.unsqueeze(-1).pow(exponents)  # as the tutorial builds (x, x², x³)

    def weighted(self, degree: int) -> tuple[np.ndarray | torch.Tensor,
                                             np.ndarray | torch.Tensor]:
        """The columns 1, x, …, xⁿ and y, each row divided by its σ: a model linear in its
        coefficients w fitted to them by plain least squares minimises Σ((P·w − y)/σ)²."""
        powers = self.powers(degree)
        if self.scale is None:
            return powers, self.y
        return powers * self.scale[:, None], self.y * self.scale

    def float64(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y as float64 NumPy arrays, for the least-squares reference."""
        if isinstance(self.x, np.ndarray):
            return self.x.astype(np.float64), self.y.astype(np.float64)
        return self.x.double().cpu().numpy(), self.y.double().cpu().numpy()


def make_problem(request: FitRequest, device: str, compiled: bool = False) -> Problem:
    """Sample the target (as the tutorial does) or take the user's points."""
    numpy = request.approach in NUMPY_APPROACHES
    data, scale = request.data, None
    if data is not None:
        if numpy:
            dtype = np.dtype(request.dtype)
            x, y = np.asarray(data.x, dtype), np.asarray(data.y, dtype)
            if data.sigma is not None:
                scale = (1 / np.asarray(data.sigma, np.float64)).astype(dtype)
        else:
            dtype = getattr(torch, request.dtype)
            x = torch.tensor(data.x, dtype=dtype, device=device)
            y = torch.tensor(data.y, dtype=dtype, device=device)
            if data.sigma is not None:
                scale = torch.tensor([1 / s for s in data.sigma], dtype=dtype, device=device)
    else:
        x, y = sample(request.target, request.x_min, request.x_max, request.n_points,
                      request.dtype, "numpy" if numpy else device)
    return Problem(x, y, "cpu" if numpy else device, compiled and not numpy, scale)


# A process keeps the points of the last few samplings it fitted: every fit only reads them,
# and sampling the target again (a parallel sin: a third of a one-step job's fit) is the
# same work each time.
@lru_cache(maxsize=8)
def sample(target: str, x_min: float, x_max: float, n_points: int, dtype: str,
           device: str) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]:
    """``target`` at ``n_points`` evenly spaced points, as read-only NumPy arrays (``device``
    "numpy") or tensors on ``device``; the same objects for the same arguments."""
    if device == "numpy":
        x = np.linspace(x_min, x_max, n_points, dtype=np.dtype(dtype))
        y = TARGETS[target](x)
        x.flags.writeable = y.flags.writeable = False
        return x, y
    x = torch.linspace(x_min, x_max, n_points, dtype=getattr(torch, dtype), device=device)
    return x, getattr(torch, target)(x)


@dataclass
class Report:
    """Called by a fit at its recorded steps; also where cancelling and time limits act.

    ``due(t)`` is cheap and needs no device sync; between recorded steps it polls the
    clock every ``POLL_EVERY`` steps and the cancel flag (a Redis read) at most every
    ``CANCEL_CHECK_SECONDS``, so a fit stops well within a second.
    """

    every: int
    steps: int
    on_progress: Callable[[int, float], None] = lambda step, loss: None
    cancel_requested: Callable[[], bool] = lambda: False
    time_limit: float | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    # the model's coefficients now, set by the approach once its parameters exist: read
    # only when progress is written (a device sync), never at every recorded step
    coefficients: Callable[[], dict[str, float]] | None = None
    compiled: bool = False  # set by a descent that ran compiled (worker/engine/descent.py)
    started: float = field(default_factory=time.perf_counter)
    last_cancel_check: float = 0.0
    POLL_EVERY = 256
    CANCEL_CHECK_SECONDS = 0.1

    def due(self, t: int) -> bool:
        if t % self.every == self.every - 1:
            return True
        if t % self.POLL_EVERY == self.POLL_EVERY - 1:
            self.poll()
        return False

    def __call__(self, t: int, loss: float | torch.Tensor) -> None:
        value = loss.item() if isinstance(loss, torch.Tensor) else float(loss)
        if not math.isfinite(value):
            raise Diverged(f"diverged at step {t} (loss={value}); lower learning_rate",
                           self.history)
        self.history.append((t, value))
        self.on_progress(t, value)
        self.poll()

    def poll(self) -> None:
        now = time.perf_counter()
        if now - self.last_cancel_check >= self.CANCEL_CHECK_SECONDS:
            self.last_cancel_check = now
            if self.cancel_requested():
                step = self.history[-1][0] if self.history else 0
                raise Cancelled(f"cancelled at step {step}", self.history)
        elapsed = now - self.started
        if self.time_limit is not None and elapsed > self.time_limit:
            raise TimeLimitExceeded(
                f"time limit exceeded ({self.time_limit:g} s) after {elapsed:.1f} s", self.history)


@dataclass
class Fit:
    """What an approach returns; the loss history is the Report's."""

    coefficients: dict[str, float]
    initial_coefficients: dict[str, float]
    formula: str
    final_loss: float
    steps_run: int


def diverged_unrecorded(fit: Fit, history: list[tuple[int, float]]) -> Diverged | None:
    """Diverged when a fit's loss or coefficients turned NaN or infinite after its last
    recorded step, where the Report could not see it; else None."""
    if all(map(math.isfinite, (fit.final_loss, *fit.coefficients.values()))):
        return None
    return Diverged(f"diverged between recorded steps (final loss {fit.final_loss} after "
                    f"{fit.steps_run} steps); lower learning_rate", history)


def named(values: np.ndarray | torch.Tensor | list[float]) -> dict[str, float]:
    """Coefficients named a, b, c, … in order."""
    return {LETTERS[i]: float(v) for i, v in enumerate(np.asarray(values, dtype=np.float64))}


def polynomial_fit(values: np.ndarray | torch.Tensor | list[float],
                   initial: np.ndarray | torch.Tensor | list[float], final_loss: float,
                   steps: int) -> Fit:
    """The Fit of a polynomial whose coefficients (a, b, c, … in order) went from ``initial``
    to ``values`` in ``steps``."""
    coefficients = named(values)
    return Fit(coefficients, named(initial), polynomial_formula(coefficients), final_loss, steps)


def polynomial_formula(coefficients: dict[str, float]) -> str:
    """The tutorial's result line: ``y = a + b x + c x^2 + d x^3``."""
    terms = []
    for power, value in enumerate(coefficients.values()):
        suffix = "" if power == 0 else " x" if power == 1 else f" x^{power}"
        terms.append(f"{value}{suffix}")
    return "y = " + " + ".join(terms)


def sse(y_pred: torch.Tensor, y: torch.Tensor,
        scale: torch.Tensor | None = None) -> torch.Tensor:
    """The sum of squared errors, Σ(y_pred − y)², as one fused op (forward and backward); with
    ``scale`` = 1/σ, χ² = Σ((y_pred − y)/σ)²."""
    if scale is None:
        return torch.nn.functional.mse_loss(y_pred, y, reduction="sum")
    return torch.nn.functional.mse_loss(y_pred * scale, y * scale, reduction="sum")


def initial_normal(request: FitRequest, count: int, device: str) -> torch.Tensor:
    """Standard-normal starting values from the job's seed, drawn on the CPU so that every
    device starts from the same numbers."""
    generator = torch.Generator().manual_seed(request.seed)
    values = torch.randn(count, generator=generator, dtype=getattr(torch, request.dtype))
    return values.to(device)
