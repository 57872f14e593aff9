"""Gradient descent as the approaches run it: autograd's gradients and torch.optim's SGD
update (``torch.optim.sgd.sgd``, with momentum where the approach has it), either replayed or
compiled.

Replayed (the default): each step is traced once into the ATen operations it runs and then
replayed (``replay.py``): the eager loop's kernels in its order, so its numbers to the bit,
without its Python, autograd and optimizer bookkeeping.

Compiled (``POLYFIT_COMPILE``, for the approaches without momentum or random draws):
``STEPS_PER_CALL`` steps fused into one ``torch.compile``d graph.

Why ten: one compiled call costs about as much as an eager step's bookkeeping
(docs/PERFORMANCE.md), so one step per call would gain little. The gradients are still autograd's
(``torch.func.grad_and_value`` traces the same backward, custom Functions included) and the
update is SGD's own code; the learning rate is a tensor, so that a new learning rate does
not compile anew. Results equal the replayed ones to rounding.

The first call for each approach, shape, dtype and device in a process compiles (seconds,
needing a C++ compiler on CPU); workers opt in with ``POLYFIT_COMPILE`` (Problem.compiled).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
from torch.optim.sgd import sgd

from polyfit.worker.engine.fit import Report
from polyfit.worker.engine.replay import replayable
from polyfit.worker.engine.torch_compat import set_recompile_limit

STEPS_PER_CALL = 10

# Each distinct (approach, shape, dtype, device, steps per call) is one compiled graph of
# `_descend`. A process compiles at most COMPILED_GRAPHS of them; a fit that would need one
# more runs replayed (the same numbers to rounding). torch's own limit sits above it: reached
# with fullgraph=True, it fails the call (FailOnRecompileLimitHit) instead of running eagerly.
COMPILED_GRAPHS = 64
set_recompile_limit(COMPILED_GRAPHS + 8)
_graphs: set[tuple] = set()  # the signatures compiled in this process

Loss = Callable[..., torch.Tensor]


def _descend(loss: Loss, params: list[torch.Tensor], learning_rate: torch.Tensor,
             inputs: tuple, steps: int) -> torch.Tensor:
    losses = []
    for _ in range(steps):
        grads, value = torch.func.grad_and_value(loss)(tuple(params), *inputs)
        sgd(params, list(grads), [None] * len(params), lr=learning_rate, momentum=0.0,
            weight_decay=0.0, dampening=0.0, nesterov=False, maximize=False, foreach=False)
        losses.append(value)
    return torch.stack(losses)


@cache
def _compiled() -> Callable[..., torch.Tensor]:
    return torch.compile(_descend, fullgraph=True)


def _step(loss: Loss, params: list[torch.Tensor], buffers: list[torch.Tensor | None],
          learning_rate: float, momentum: float, inputs: tuple,
          unused: tuple[int, ...]) -> torch.Tensor:
    """One step as an eager loop runs it, for worker/engine/replay.py to trace; torch.optim leaves a
    parameter without a gradient (``unused`` by this step's loss) alone, momentum and all."""
    value = loss(tuple(params), *inputs)
    used = [i for i in range(len(params)) if i not in unused]
    grads = torch.autograd.grad(value, [params[i] for i in used])
    sgd([params[i].detach() for i in used], list(grads), [buffers[i] for i in used],
        lr=learning_rate, momentum=momentum, weight_decay=0.0, dampening=0.0, nesterov=False,
        maximize=False, foreach=False)
    return value.detach()


def descend(loss: Loss, params: list[torch.Tensor], inputs: tuple, learning_rate: float,
            steps: int, report: Report, momentum: float = 0.0,
            draw: Callable[[], tuple[tuple, tuple[int, ...]]] | None = None,
            compiled: bool = False) -> None:
    """Run ``steps`` SGD steps on ``loss(params, *inputs)``, updating ``params`` in place
    (tensors that do not require grad) and reporting the loss before each step as the eager
    loops do. ``draw``, when given, is called once per step for more inputs and the indexes
    of the params that this step's loss does not use (the dynamic approach's random degree).
    ``compiled`` takes neither ``momentum`` nor ``draw`` (``approaches.compiles``).

    ``loss`` must be a module-level function (a new closure per fit would compile anew)."""
    chunk = max(k for k in range(1, STEPS_PER_CALL + 1) if steps % k == 0)
    if not compiled or not _compile_allowed(loss, params, inputs, chunk):
        _replay(loss, params, inputs, learning_rate, steps, report, momentum, draw)
        return
    report.compiled = True
    rate = torch.tensor(learning_rate, dtype=params[0].dtype, device=params[0].device)
    step = _compiled()
    for start in range(0, steps, chunk):
        losses = step(loss, params, rate, inputs, chunk)
        for offset in range(chunk):
            if report.due(start + offset):
                report(start + offset, losses[offset])


def _quiet_step(loss: Loss, params: list[torch.Tensor], buffers: list[torch.Tensor | None],
                learning_rate: float, momentum: float, inputs: tuple,
                unused: tuple[int, ...]) -> torch.Tensor:
    """``_step`` for a step whose loss is not recorded: traced, it computes the update alone
    (autograd seeds the backward with ones, not with the loss)."""
    _step(loss, params, buffers, learning_rate, momentum, inputs, unused)
    return params[0]


def _compile_allowed(loss: Loss, params: list[torch.Tensor], inputs: tuple, chunk: int) -> bool:
    """Whether this fit's graph is compiled already or one more fits under
    ``COMPILED_GRAPHS``; notes it as compiled when it is new."""
    signature = (loss, chunk, *((tuple(value.shape), value.dtype, value.device)
                                if isinstance(value, torch.Tensor) else value
                                for value in (*params, *inputs)))
    if signature not in _graphs and len(_graphs) >= COMPILED_GRAPHS:
        return False
    _graphs.add(signature)
    return True


def _replay(loss: Loss, params: list[torch.Tensor], inputs: tuple, learning_rate: float,
            steps: int, report: Report, momentum: float,
            draw: Callable[[], tuple[tuple, tuple[int, ...]]] | None) -> None:
    trainable = [p.detach().requires_grad_() for p in params]  # the same storage
    # Zero momentum buffers: a first step's 0·momentum + grad is the grad, as torch.optim's
    # first step (a copy of the grad) has it.
    buffers = [torch.zeros_like(p) if momentum else None for p in params]
    replays: dict[tuple, Callable[[], torch.Tensor]] = {}  # one per draw, recording or not
    for t in range(steps):
        extra, unused = draw() if draw else ((), ())
        due = report.due(t)
        if (extra, unused, due) not in replays:
            replays[extra, unused, due] = replayable(
                _step if due else _quiet_step, loss, trainable, buffers, learning_rate,
                momentum, inputs + extra, unused, calls=steps)
        value = replays[extra, unused, due]()
        if due:
            report(t, value)
