"""The target functions a request may name (an allowlist, never evaluated code), and the
curves a finished job is drawn with: its points rebuilt from the request and its model on a
grid (the API's /curve and ``polyfit-client plot``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from polyfit.models.statistics import design

Target = Literal["sin", "cos", "exp", "tanh"]  # a new target: here and in TARGETS below
TARGETS: dict[Target, Callable[[np.ndarray], np.ndarray]] = {
    "sin": np.sin, "cos": np.cos, "exp": np.exp, "tanh": np.tanh}
CURVE_POINTS = 500  # the grid a fitted model is drawn on


def sample(request: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The points the job fitted: the user's data, or the target on [x_min, x_max]."""
    if request.get("data"):
        return (np.asarray(request["data"]["x"], dtype=np.float64),
                np.asarray(request["data"]["y"], dtype=np.float64))
    x = np.linspace(request["x_min"], request["x_max"], request["n_points"])
    return x, TARGETS[request["target"]](x)


def evaluate(approach: str, coefficients: dict[str, float], degree: int,
             x: np.ndarray) -> np.ndarray:
    """The fitted model at ``x``: a + b x + c x² + … for the polynomial approaches,
    a + b·Pₙ(c + d·x) for legendre, the cubic + e·x⁴ + e·x⁵ for dynamic (the full model its
    final loss is scored with)."""
    return design(approach, np.asarray(x, np.float64), list(coefficients.values()), degree)[0]
