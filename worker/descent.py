"""Gradient descent compiled by ``torch.compile``: autograd's gradients and torch.optim's SGD
update (``torch.optim.sgd.sgd``, with momentum where the approach has it), ``STEPS_PER_CALL``
steps fused into one graph.

Why: on 2000 points a step is a few microseconds of arithmetic and tens of microseconds of
Python, dispatch, autograd and optimizer bookkeeping; one compiled call costs about as much
as that bookkeeping (~15 µs here), so it runs ten steps, not one. The gradients are still
autograd's (``torch.func.grad_and_value`` traces the same backward, custom Functions
included) and the update is SGD's own code; the learning rate is a tensor, so that a new
learning rate does not compile anew. Results equal the eager loops' to rounding.

The first call for each approach, shape, dtype and device in a process compiles (seconds,
needing a C++ compiler on CPU); workers opt in with ``POLYFIT_COMPILE`` (Problem.compiled).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
import torch._dynamo
from torch.optim.sgd import sgd

from worker.fit import Report

STEPS_PER_CALL = 10

# Each distinct (approach, shape, dtype, device, steps per call) is one compiled graph of
# `_descend`; past torch's default of 8 it would silently run uncompiled.
torch._dynamo.config.recompile_limit = 64

Loss = Callable[..., torch.Tensor]


def _descend(loss: Loss, params: list[torch.Tensor], buffers: list[torch.Tensor | None],
             learning_rate: torch.Tensor, momentum: float, inputs: tuple, steps: int,
             unused: tuple[int, ...] = ()) -> torch.Tensor:
    losses = []
    used = [i for i in range(len(params)) if i not in unused]
    for _ in range(steps):
        grads, value = torch.func.grad_and_value(loss)(tuple(params), *inputs)
        # torch.optim leaves a parameter without a gradient alone, momentum buffer and all
        used_buffers = [buffers[i] for i in used]
        sgd([params[i] for i in used], [grads[i] for i in used], used_buffers,
            lr=learning_rate, momentum=momentum, weight_decay=0.0, dampening=0.0,
            nesterov=False, maximize=False, foreach=False)
        for i, buffer in zip(used, used_buffers, strict=True):
            buffers[i] = buffer  # made by sgd on a parameter's first step with momentum
        losses.append(value)
    return torch.stack(losses)


@cache
def _compiled() -> Callable[..., torch.Tensor]:
    return torch.compile(_descend, fullgraph=True)


def descend(loss: Loss, params: list[torch.Tensor], inputs: tuple, learning_rate: float,
            steps: int, report: Report, momentum: float = 0.0,
            draw: Callable[[], tuple[tuple, tuple[int, ...]]] | None = None) -> None:
    """Run ``steps`` SGD steps on ``loss(params, *inputs)``, updating ``params`` in place
    (tensors that do not require grad) and reporting the loss before each step as the eager
    loops do. ``draw``, when given, is called once per step for more inputs and the indexes
    of the params that this step's loss does not use (the dynamic approach's random degree);
    the steps then go one per call.

    ``loss`` must be a module-level function (a new closure per fit would compile anew)."""
    chunk = 1 if draw else max(k for k in range(1, STEPS_PER_CALL + 1) if steps % k == 0)
    rate = torch.tensor(learning_rate, dtype=params[0].dtype, device=params[0].device)
    buffers: list[torch.Tensor | None] = [None] * len(params)
    step = _compiled()
    for start in range(0, steps, chunk):
        extra, unused = draw() if draw else ((), ())
        losses = step(loss, params, buffers, rate, momentum, inputs + extra, chunk, unused)
        for offset in range(chunk):
            if report.due(start + offset):
                report(start + offset, losses[offset])
