"""The fitting approaches, one module each, by name: ``fit(problem, request, report) -> Fit``."""

from collections.abc import Callable

from polyfit.models import FitRequest
from polyfit.worker.engine.approaches import (
    autograd,
    dynamic,
    exact,
    legendre,
    module,
    nn,
    numpy_sgd,
    optim,
    tensor,
)
from polyfit.worker.engine.fit import Fit, Problem, Report

FitFunction = Callable[[Problem, FitRequest, Report], Fit]

# The approaches that run compiled (worker/engine/descent.py) when their worker compiles and they
# descend by plain SGD. Not dynamic: its random degree and momentum make one step per
# compiled call, no faster than its replayed steps (bench/approaches.py).
COMPILED = ("autograd", "legendre", "nn", "optim", "module")


def compiles(request: FitRequest) -> bool:
    """Whether ``request`` runs compiled on a compiling worker. RMSprop and Adam do not: at
    optim's default learning rate RMSprop hops around the optimum, where a fused kernel's
    rounding would move its final loss within its band (docs/REPRODUCIBILITY.md); replayed,
    it is torch.optim's to the bit."""
    return request.approach in COMPILED and request.optimizer == "sgd"

APPROACHES: dict[str, FitFunction] = {
    "numpy": numpy_sgd.fit,
    "tensor": tensor.fit,
    "autograd": autograd.fit,
    "legendre": legendre.fit,
    "nn": nn.fit,
    "optim": optim.fit,
    "module": module.fit,
    "dynamic": dynamic.fit,
    "exact": exact.fit,
}
