"""The fitting approaches, one module each, by name: ``fit(problem, request, report) -> Fit``."""

from collections.abc import Callable

from models import FitRequest
from worker.approaches import (
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
from worker.fit import Fit, Problem, Report

FitFunction = Callable[[Problem, FitRequest, Report], Fit]

# The approaches that run compiled when Problem.compiled is set (worker/descent.py). The
# others update through torch.optim, whose step() always breaks a compiled graph, or are
# not gradient descent on torch tensors.
COMPILED = ("autograd", "legendre", "nn")

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
