"""Gradient descent compiled by ``torch.compile``: p ← p − lr·∇loss(p), ``STEPS_PER_CALL`` steps
fused into one graph, for the approaches that update their parameters by hand.

Why: on 2000 points a step is a few microseconds of arithmetic and tens of microseconds of
Python, dispatch and autograd bookkeeping; one compiled call costs about as much as that
bookkeeping (~15 µs here), so it runs ten steps, not one. The gradients are still autograd's
(``torch.func.grad_and_value`` traces the same backward, custom Functions included).

The first call for each approach, shape, dtype and device in a process compiles (seconds,
needing a C++ compiler on CPU); workers opt in with ``POLYFIT_COMPILE`` (Problem.compiled).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
import torch._dynamo

from worker.fit import Report

STEPS_PER_CALL = 10

# Each distinct (approach, shape, dtype, device, steps per call) is one compiled graph of
# `_descend`; past torch's default of 8 it would silently run uncompiled.
torch._dynamo.config.recompile_limit = 64

Params = tuple[torch.Tensor, ...]
Loss = Callable[..., torch.Tensor]


def _descend(loss: Loss, params: Params, learning_rate: torch.Tensor, inputs: tuple,
             steps: int) -> tuple[Params, torch.Tensor]:
    losses = []
    for _ in range(steps):
        grads, value = torch.func.grad_and_value(loss)(params, *inputs)
        params = tuple(p - learning_rate * g for p, g in zip(params, grads, strict=True))
        losses.append(value)
    return params, torch.stack(losses)


@cache
def _compiled() -> Callable[..., tuple[Params, torch.Tensor]]:
    return torch.compile(_descend, fullgraph=True)


def descend(loss: Loss, params: Params, inputs: tuple, learning_rate: float, steps: int,
            report: Report) -> Params:
    """Run ``steps`` steps of gradient descent on ``loss(params, *inputs)``, reporting the loss
    before each step as the eager loops do, and return the final parameters.

    ``loss`` must be a module-level function (a new closure per fit would compile anew)."""
    chunk = max(k for k in range(1, STEPS_PER_CALL + 1) if steps % k == 0)
    rate = torch.tensor(learning_rate, dtype=params[0].dtype, device=params[0].device)
    step = _compiled()
    for start in range(0, steps, chunk):
        params, losses = step(loss, params, rate, inputs, chunk)
        for offset in range(chunk):
            if report.due(start + offset):
                report(start + offset, losses[offset])
    return params
