"""The one place polyfit uses torch's private or experimental names (checked with torch
2.13.0; ``tests/test_compat.py`` fails loudly when one of them moves or changes shape).

- ``make_fx`` (``torch.fx.experimental.proxy_tensor``) and ``tree_flatten`` /
  ``tree_unflatten`` (``torch.utils._pytree``): tracing a step for the replay.
- ``OpOverload`` (``torch._ops``) and its ``_schema``: which traced nodes are ATen calls, and
  whether one writes to an ``out`` argument or mutates its inputs.
- ``torch._C.TensorBase``, ``torch._C._VariableFunctions``, ``torch._C._nn``: where the
  generated method or function of an ATen operation lives.
- ``torch._dynamo`` and ``torch._dynamo.config.recompile_limit``: compiled descent.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils._pytree import tree_flatten, tree_unflatten

OpOverload = torch._ops.OpOverload
TENSOR_METHODS = torch._C.TensorBase
FUNCTION_NAMESPACES = (torch._C._VariableFunctions, torch._C._nn)

__all__ = ["FUNCTION_NAMESPACES", "TENSOR_METHODS", "OpOverload", "load_dynamo", "make_fx",
           "schema_of", "set_recompile_limit", "tree_flatten", "tree_unflatten"]


def schema_of(operation: OpOverload) -> Any:
    """The ``torch._C.FunctionSchema`` of an ATen overload."""
    return operation._schema


def load_dynamo() -> None:
    """Import ``torch._dynamo``, which a process's first torch.optim optimizer imports too
    (seconds): done once before a worker's pool forks, no fit pays it."""
    import torch._dynamo  # noqa: F401


def set_recompile_limit(graphs: int) -> None:
    """How many graphs ``torch.compile`` keeps per function before it stops compiling it."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = graphs
