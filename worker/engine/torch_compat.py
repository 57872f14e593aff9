"""The one place polyfit uses torch's private or experimental names (checked with torch
2.13.0; ``tests/test_compat.py`` fails loudly when one of them moves or changes shape).

- ``make_fx`` (``torch.fx.experimental.proxy_tensor``) and ``tree_flatten`` /
  ``tree_unflatten`` (``torch.utils._pytree``): tracing a step for the replay.
- ``OpOverload`` (``torch._ops``) and its ``_schema``: which traced nodes are ATen calls, and
  whether one writes to an ``out`` argument or mutates its inputs.
- ``torch._C.TensorBase``, ``torch._C._VariableFunctions``, ``torch._C._nn``: where the
  generated method or function of an ATen operation lives.
- ``torch._dynamo`` and ``torch._dynamo.config.recompile_limit`` (``cache_size_limit`` before
  torch 2.6): compiled descent.
- ``torch.jit.script`` (deprecated since torch 2.10 in favour of torch.compile, which rounds
  differently) and ``torch._C._set_graph_executor_optimize``: the replay's interpreter.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils._pytree import tree_flatten, tree_unflatten

OpOverload = torch._ops.OpOverload
TENSOR_METHODS = torch._C.TensorBase
FUNCTION_NAMESPACES = (torch._C._VariableFunctions, torch._C._nn)

__all__ = ["FUNCTION_NAMESPACES", "TENSOR_METHODS", "OpOverload", "load_dynamo", "make_fx",
           "schema_of", "script", "set_recompile_limit", "tree_flatten", "tree_unflatten"]

log = logging.getLogger("polyfit.worker")


def schema_of(operation: OpOverload) -> Any:
    """The ``torch._C.FunctionSchema`` of an ATen overload."""
    return operation._schema


def load_dynamo() -> None:
    """Import ``torch._dynamo``, which a process's first torch.optim optimizer imports too
    (seconds): done once before a worker's pool forks, no fit pays it."""
    import torch._dynamo  # noqa: F401


def set_recompile_limit(graphs: int) -> None:
    """How many graphs ``torch.compile`` keeps per function before it stops compiling it:
    ``recompile_limit`` since torch 2.6, ``cache_size_limit`` before (pyproject admits 2.4)."""
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, graphs)


def script(graph: torch.fx.GraphModule) -> Callable[..., Any]:
    """``graph`` as a function run by TorchScript's interpreter, without its optimizing
    executor (which fuses kernels, and fused kernels round differently): the same ATen calls
    in the same order as the graph's Python code, without Python's cost per call (about half
    of a small step's time). The graph's own Python code where TorchScript cannot take it or
    is gone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its deprecation, and notes on fx's annotations
            forward = torch.jit.script(graph).forward
        set_optimize = torch._C._set_graph_executor_optimize
    except Exception as error:  # TorchScript refused this graph, or is gone
        log.warning("a traced step replays in Python (slower): TorchScript: %s", error)
        return graph.forward

    def run(*tensors: torch.Tensor) -> Any:
        set_optimize(False)  # a thread's setting: set for whichever thread runs the step
        return forward(*tensors)

    return run
