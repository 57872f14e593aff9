"""A training step traced once into the ATen operations it runs, then replayed step by step.

Why: on 2000 points an eager step is a few microseconds of arithmetic and several times as
much of Python, module calls, autograd building and walking its graph, and optimizer
bookkeeping, the same at every step. ``make_fx`` records what one step runs (the forward,
autograd's backward and the optimizer's update) as a list of ATen operations; replaying that
list runs the same kernels in the same order, so every step's numbers are bitwise those of the
eager loop, which torch.compile cannot promise: its fused kernels round differently, and
RMSprop at optim's default learning rate turns one ulp into a different final loss
(docs/REPRODUCIBILITY.md). On the CPU it does what a CUDA graph does on a GPU.

A step that reads a value back to Python to do its arithmetic (Adam's bias correction reads
its step count) cannot be replayed: tracing would freeze that value.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from polyfit.worker.engine.torch_compat import (
    FUNCTION_NAMESPACES,
    TENSOR_METHODS,
    OpOverload,
    make_fx,
    schema_of,
    script,
    tree_flatten,
    tree_unflatten,
)

# Tracing a step costs as much as some tens of eager steps (docs/PERFORMANCE.md): a step that
# runs fewer times than this runs as it is.
TRACE_PAYS_FROM = 100


def replayable(step: Callable[..., torch.Tensor], *args: Any,
               calls: int) -> Callable[[], torch.Tensor]:
    """``step(*args)`` traced on fake copies of the tensors in ``args`` (which may nest them in
    lists and tuples; the parameters requiring grad, for the step's ``torch.autograd.grad`` to
    trace; anything else is taken as a constant), returned as a function that runs it again on
    ``args`` themselves: each call updates them in place as ``step`` does and returns what it
    returns, without autograd. For fewer than ``TRACE_PAYS_FROM`` ``calls``, ``step`` itself
    on ``args`` (the same numbers, without the cost of tracing), unless this process has traced
    the same step already."""
    leaves, layout = tree_flatten(args)
    tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
    key = _signature(step, leaves, layout, tensors)
    run = _traced.get(key) if key is not None else None
    if run is None:
        if calls < TRACE_PAYS_FROM:
            return partial(step, *args)
        run, constants = _trace(step, leaves, layout, tensors)
        if key is not None and not constants:
            _traced.put(key, run)
    no_grad = torch.no_grad()

    def replay() -> torch.Tensor:
        with no_grad:
            return run(*tensors)

    return replay


class _Traced:
    """This process's replayable steps by signature, the most recently used ``SIZE``: a
    worker's next job of the same approach, shape, dtype, device and settings traces
    nothing."""

    SIZE = 64

    def __init__(self) -> None:
        self._runs: OrderedDict[tuple, Callable[..., torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()  # a threads pool's jobs share it

    def get(self, key: tuple) -> Callable[..., torch.Tensor] | None:
        with self._lock:
            if key in self._runs:
                self._runs.move_to_end(key)
            return self._runs.get(key)

    def put(self, key: tuple, run: Callable[..., torch.Tensor]) -> None:
        with self._lock:
            self._runs[key] = run
            while len(self._runs) > self.SIZE:
                self._runs.popitem(last=False)


_traced = _Traced()


def _signature(step: Callable[..., torch.Tensor], leaves: list[Any], layout: Any,
               tensors: list[torch.Tensor]) -> tuple | None:
    """What a traced step depends on: the step, the constants among its arguments, and each
    tensor's shape, strides, dtype, device, whether it requires grad and which earlier
    argument's storage it shares; None when a constant cannot be compared (unhashable)."""
    storages: dict[int, int] = {}
    described = []
    for index, tensor in enumerate(tensors):
        storage = tensor.untyped_storage().data_ptr()
        described.append((tuple(tensor.shape), tensor.stride(), tensor.storage_offset(),
                          tensor.dtype, tensor.device, tensor.requires_grad,
                          storages.setdefault(storage, index)))
    constants = tuple(leaf for leaf in leaves if not isinstance(leaf, torch.Tensor))
    key = (step, str(layout), constants, tuple(described))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _trace(step: Callable[..., torch.Tensor], leaves: list[Any], layout: Any,
           tensors: list[torch.Tensor]) -> tuple[Callable[..., torch.Tensor], bool]:
    """``step`` as a function of ``tensors``, and whether its graph holds tensors of its own
    (constants of this call: not to be replayed on other tensors)."""

    def traced(*fakes: torch.Tensor) -> torch.Tensor:
        substitutes = iter(fakes)
        leaves_now = [next(substitutes) if isinstance(leaf, torch.Tensor) else leaf
                      for leaf in leaves]
        return step(*tree_unflatten(leaves_now, layout))

    graph = make_fx(traced, tracing_mode="fake")(*tensors)
    _seed_backward_without_the_loss(graph.graph)
    _skip_identities(graph.graph)
    _without_zero_fill(graph.graph)
    graph.graph.eliminate_dead_code()  # keeps what writes to the arguments
    for node in graph.graph.nodes:
        if node.op == "call_function" and isinstance(node.target, OpOverload):
            _call_by_name(node)
    graph.recompile()
    constants = any(node.op == "get_attr" for node in graph.graph.nodes)
    return script(graph), constants


def _call_by_name(node: torch.fx.Node) -> None:
    """An ATen overload called from Python matches its arguments against the schema (a cost
    per call); the generated function of the same name takes the same arguments in the same
    order and runs the same kernel. So does the method, but only for an overload whose first
    argument is its Tensor ``self``: a method binds the tensor it is called on as ``self``
    (``where.self(condition, self, other)`` as ``condition.where(…)`` would swap two
    arguments). The others (``out`` variants) by their overload packet, which TorchScript
    resolves by the same schema matching."""
    schema = schema_of(node.target)
    name = schema.name.removeprefix("aten::")
    writes_out = any(argument.is_out for argument in schema.arguments)  # no method
    first = schema.arguments[0] if schema.arguments else None
    bound = first is not None and first.name == "self" and str(first.type) == "Tensor"
    if hasattr(TENSOR_METHODS, name) and bound and not writes_out:
        node.op, node.target = "call_method", name
        return
    for functions in FUNCTION_NAMESPACES:
        if hasattr(functions, name):
            node.target = getattr(functions, name)
            return
    node.target = getattr(torch.ops.aten, name)


def _seed_backward_without_the_loss(graph: torch.fx.Graph) -> None:
    """Autograd seeds the backward of a scalar with ``ones_like(loss)``, which reads only the
    loss's dtype and device: a ``ones`` of those instead, so that a step that does not
    return its loss does not compute it."""
    for node in list(graph.nodes):
        if node.target is torch.ops.aten.ones_like.default:
            like = node.args[0].meta["val"]
            if like.dim() == 0:
                with graph.inserting_before(node):
                    ones = graph.call_function(torch.ops.aten.ones.default, ([],),
                                               {"dtype": like.dtype, "device": like.device})
                node.replace_all_uses_with(ones)
                graph.erase_node(node)


def _skip_identities(graph: torch.fx.Graph) -> None:
    """Drop what only autograd needs: ``detach`` (the same storage without the autograd
    history, which a replay has none of), and backward formulas' multiplications by 1 where
    neither the product nor its factor is ever written to (x·1 is x, to the bit)."""
    aten = torch.ops.aten
    for node in list(graph.nodes):
        if node.target is aten.detach.default:
            node.replace_all_uses_with(node.args[0])
        elif (node.target is aten.mul.Scalar and node.args[1] == 1
              and node.meta["val"].dtype == node.args[0].meta["val"].dtype
              and _only_read(node) and _only_read(node.args[0])):
            node.replace_all_uses_with(node.args[0])


def _only_read(node: torch.fx.Node) -> bool:
    """Whether every use of ``node`` is an ATen operation that writes to none of its inputs."""
    return all(isinstance(user.target, OpOverload) and not schema_of(user.target).is_mutable
               for user in node.users)


def _without_zero_fill(graph: torch.fx.Graph) -> None:
    """``mse_loss_backward`` fills its output with zeros before its kernel writes every
    element of it (a K × n memset per step of a sweep): its out variant into an empty tensor
    instead, the same kernel and numbers."""
    aten = torch.ops.aten
    for node in list(graph.nodes):
        if node.target is aten.mse_loss_backward.default:
            with graph.inserting_before(node):
                empty = graph.call_function(aten.empty_like.default, (node.args[1],),
                                            {"memory_format": torch.contiguous_format})
                written = graph.call_function(aten.mse_loss_backward.grad_input, node.args,
                                              {"grad_input": empty})
            node.replace_all_uses_with(written)
            graph.erase_node(node)
