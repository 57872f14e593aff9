"""FitRequest: what a user asks polyfit to fit, validated, with per-approach defaults."""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from polyfit.models.curves import TARGETS, Target
from polyfit.models.settings import current_settings

Approach = Literal[
    "numpy", "tensor", "autograd", "legendre", "nn", "optim", "module", "dynamic", "exact"
]
APPROACHES: tuple[str, ...] = get_args(Approach)
Optimizer = Literal["sgd", "rmsprop", "adam"]
Device = Literal["cpu", "cuda", "auto"]
Dtype = Literal["float32", "float64"]

# Approaches whose model is a polynomial in x with one coefficient per power.
POLYNOMIAL_APPROACHES = ("numpy", "tensor", "autograd", "nn", "optim", "module", "exact")
NUMPY_APPROACHES = ("numpy", "exact")
DYNAMIC_DEGREE = 3
DYNAMIC_POWER = 5  # its cubic plus the shared x⁴ and x⁵ terms

STEPS = {"dynamic": 30_000}
LEARNING_RATE = {"legendre": 5e-6, "dynamic": 1e-8}
# RMSprop and Adam step by about the learning rate itself, SGD by it times the gradient (~1e3
# here): the tutorial's RMSprop takes 1e-3; Adam reaches the optimum from every start at 1e-2
OPTIMIZER_LEARNING_RATE = {"rmsprop": 1e-3, "adam": 1e-2}
OPTIMIZER: dict[str, Optimizer] = {"optim": "rmsprop", "module": "sgd", "dynamic": "sgd"}
RECORD_EVERY = {"dynamic": 2000}


class Points(BaseModel):
    """User-supplied data points, used instead of a sampled target; ``sigma``, when given, is
    each y's standard deviation: the fit then minimises Σ((y − f)/σ)²."""

    model_config = ConfigDict(extra="forbid")

    x: list[float] = Field(min_length=2)
    y: list[float] = Field(min_length=2)
    sigma: list[float] | None = None

    @field_validator("x", "y", "sigma", mode="before")
    @classmethod
    def _not_too_many(cls, values: object) -> object:
        """Counted before each value is parsed, so a huge array is refused at once."""
        limit = current_settings().max_points
        if isinstance(values, list | tuple) and len(values) > limit:
            raise ValueError(f"has {len(values)} points, more than the limit {limit}")
        return values

    @field_validator("x", "y")
    @classmethod
    def _finite(cls, values: list[float]) -> list[float]:
        if not all(math.isfinite(v) for v in values):
            raise ValueError("must be finite numbers (no NaN or infinity)")
        return values

    @field_validator("sigma")
    @classmethod
    def _positive(cls, values: list[float] | None) -> list[float] | None:
        for index, value in enumerate(values or []):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"point {index}: sigma must be a positive finite number, "
                                 f"not {value:g}")
        return values

    @model_validator(mode="after")
    def _same_length(self) -> Points:
        if len(self.x) != len(self.y):
            raise ValueError(f"x and y must have equal lengths ({len(self.x)} != {len(self.y)})")
        if self.sigma is not None and len(self.sigma) != len(self.x):
            raise ValueError(f"sigma must have one value per point ({len(self.sigma)} != "
                             f"{len(self.x)})")
        if len(set(self.x)) < 2:
            raise ValueError("x needs at least two distinct values")
        return self


class FitRequest(BaseModel):
    """A fit job's parameters. Omitted fields get the tutorial's defaults for the approach."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    approach: Approach
    target: Target = "sin"
    data: Points | None = None
    x_min: float = -math.pi
    x_max: float = math.pi
    n_points: int = Field(2000, ge=2)
    degree: int = Field(3, ge=1)
    steps: int | None = Field(None, gt=0)
    learning_rate: float | None = Field(None, gt=0)
    optimizer: Optimizer | None = None
    momentum: float | None = Field(None, ge=0, lt=1)
    seed: int | None = Field(None, ge=0, lt=2**63)
    device: Device = "auto"
    dtype: Dtype | None = None
    record_every: int | None = Field(None, gt=0)
    absolute_sigma: bool = False

    @model_validator(mode="after")
    def _fill_defaults(self) -> FitRequest:
        settings = current_settings()
        name = self.approach
        if self.data is not None:
            for unused in ("target", "x_min", "x_max", "n_points"):
                if getattr(self, unused) != FitRequest.model_fields[unused].default:
                    raise ValueError(f"{unused}: not used when data points are given")
        if self.absolute_sigma and (self.data is None or self.data.sigma is None):
            raise ValueError("absolute_sigma: needs data with a sigma for every point")
        if self.x_min >= self.x_max:
            raise ValueError(f"x_min ({self.x_min}) must be less than x_max ({self.x_max})")
        if self.n_points > settings.max_points:
            raise ValueError(f"n_points {self.n_points} exceeds the limit {settings.max_points}")
        if self.degree > settings.max_degree:
            raise ValueError(f"degree {self.degree} exceeds the limit {settings.max_degree}")
        if name == "dynamic" and self.degree != DYNAMIC_DEGREE:
            raise ValueError("degree: dynamic keeps the tutorial's cubic (+ x^4, x^5); use 3")
        if name == "nn" and self.optimizer not in (None, "sgd"):
            raise ValueError("optimizer: nn updates by hand with plain SGD; use optim instead")
        if name == "dynamic" and self.optimizer not in (None, "sgd"):
            raise ValueError("optimizer: dynamic uses SGD with momentum (see --momentum)")
        if name not in ("optim", "module", "dynamic") and self.optimizer not in (None, "sgd"):
            raise ValueError(f"optimizer: {name} uses plain gradient descent")
        if name in NUMPY_APPROACHES and self.device == "cuda":
            raise ValueError(f"device: {name} runs on NumPy and cannot use cuda")
        if self.momentum is not None and name != "dynamic":
            raise ValueError("momentum: only dynamic uses momentum")
        wide: Dtype = "float64" if name in NUMPY_APPROACHES else "float32"
        self.dtype = self.dtype or wide
        self._check_dtype_holds_the_values()
        if name == "exact":
            for field in ("steps", "learning_rate", "record_every"):
                if getattr(self, field) is not None:
                    raise ValueError(f"{field}: exact is closed-form and takes no gradient steps")
            return self
        self.steps = self.steps or STEPS.get(name, 2000)
        if self.steps > settings.max_steps:
            raise ValueError(f"steps {self.steps} exceeds the limit {settings.max_steps}")
        self.optimizer = self.optimizer or OPTIMIZER.get(name, "sgd")
        self.learning_rate = (self.learning_rate or LEARNING_RATE.get(name)
                              or OPTIMIZER_LEARNING_RATE.get(self.optimizer or "sgd", 1e-6))
        if name == "dynamic" and self.momentum is None:
            self.momentum = 0.9
        self.record_every = self.record_every or RECORD_EVERY.get(name, 100)
        return self

    def _check_dtype_holds_the_values(self) -> None:
        """x, its highest power and y must be finite in the fit's dtype: otherwise the fit
        could only produce NaN (with a gradient approach, as if it had diverged)."""
        largest = float(np.finfo(self.dtype).max)
        wider = "; or use dtype float64" if self.dtype == "float32" else ""
        if self.data is not None:
            xs, ys, where, advice = self.data.x, self.data.y, "data", "rescale x"
        else:
            if not math.isfinite(self.x_max - self.x_min):
                raise ValueError(f"x_min..x_max: the range {self.x_min:g}..{self.x_max:g} is "
                                 "too wide to sample")
            xs, advice = [self.x_min, self.x_max], "narrow the range"
            where = f"x_min..x_max ({self.x_min:g}..{self.x_max:g})"
            with np.errstate(over="ignore"):  # exp and tanh are monotonic, sin and cos bounded
                ys = TARGETS[self.target](np.array(xs, dtype=self.dtype)).tolist()
            if not all(math.isfinite(y) for y in ys):
                raise ValueError(f"target: {self.target} overflows {self.dtype} on {where}; "
                                 f"{advice}{wider}")
        power = DYNAMIC_POWER if self.approach == "dynamic" else self.degree
        reach = max(abs(x) for x in xs)
        if reach > 0 and power * math.log(reach) >= math.log(largest):
            raise ValueError(f"{where}: |x|^{power} overflows {self.dtype} for |x| up to "
                             f"{reach:g}; {advice}{wider}")
        if max(abs(y) for y in ys) >= largest:
            raise ValueError(f"data: y beyond {largest:g} overflows {self.dtype}; rescale y"
                             f"{wider}")
        if self.data is not None and self.data.sigma is not None:
            smallest = min(self.data.sigma)
            if (max(abs(y) for y in ys) / smallest >= largest
                    or smallest < 1 / math.sqrt(float(np.finfo(np.float64).max))):
                raise ValueError(f"data: y/sigma overflows {self.dtype} for sigma down to "
                                 f"{smallest:g}; rescale y and sigma together{wider}")

    @property
    def point_count(self) -> int:
        """The points the fit runs on: the data's, else ``n_points``."""
        return len(self.data.x) if self.data is not None else self.n_points

    @property
    def queue(self) -> str:
        """The Celery queue this request is routed to; ``auto`` follows POLYFIT_AUTO_QUEUE."""
        return current_settings().auto_queue if self.device == "auto" else self.device


def describe(error: ValidationError) -> str:
    """One line naming each bad field: ``steps: Input should be greater than 0``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return " ".join("; ".join(parts).split())  # one line, whatever the keys hold
