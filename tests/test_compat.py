"""The private names of torch and kombu that polyfit relies on, each used from one module
(``worker/engine/torch_compat.py``, ``worker/service/kombu_compat.py``): if an upgrade moves
or reshapes one, these fail here, by name, before anything subtler does."""

from __future__ import annotations

import inspect

import torch
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from polyfit.worker.engine import torch_compat


def test_torch_names_the_replay_and_compile_use() -> None:
    aten = torch.ops.aten
    assert isinstance(aten.mm.default, torch_compat.OpOverload)
    schema = torch_compat.schema_of(aten.mse_loss_backward.grad_input)
    assert schema.name == "aten::mse_loss_backward"
    assert [argument.is_out for argument in schema.arguments][-1] is True
    assert schema.is_mutable and not torch_compat.schema_of(aten.mul.Scalar).is_mutable
    assert hasattr(torch_compat.TENSOR_METHODS, "addmm")
    assert all(any(hasattr(namespace, name) for namespace in torch_compat.FUNCTION_NAMESPACES)
               for name in ("addmm", "mse_loss"))
    leaves, layout = torch_compat.tree_flatten(([torch.ones(1)], 2.0))
    assert len(leaves) == 2 and torch_compat.tree_unflatten(leaves, layout)[1] == 2.0
    graph = torch_compat.make_fx(lambda x: x * 2, tracing_mode="fake")(torch.ones(2))
    assert any(node.target is aten.mul.Tensor for node in graph.graph.nodes)


def test_torchscript_runs_a_replay_graph_unoptimized(caplog) -> None:
    """The replay's interpreter: an fx graph calling a method, a generated function and an
    overload packet with an ``out`` argument, as replay.py leaves them, scripts (no fall-back
    to Python), computes what the graph computes, and runs without the optimizing executor."""
    def step(x, y):  # unannotated: this module's annotations are strings, fx copies them
        gradient = torch.ops.aten.mse_loss_backward(torch.ones(()), x, y, 2,
                                                    grad_input=torch.empty_like(x))
        return gradient.mul(3.0) + torch.sin(x)

    graph = torch.fx.symbolic_trace(step)
    with caplog.at_level("WARNING"):
        run = torch_compat.script(graph)
    assert not caplog.records
    x, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 0.5, 0.5])
    try:
        assert torch.equal(run(x, y), graph.forward(x, y))
        assert not torch._C._get_graph_executor_optimize()  # set for the calling thread
    finally:
        torch._C._set_graph_executor_optimize(True)


def test_torch_dynamo_takes_a_recompile_limit() -> None:
    import torch._dynamo

    before = torch._dynamo.config.recompile_limit
    try:
        torch_compat.set_recompile_limit(before + 1)
        assert torch._dynamo.config.recompile_limit == before + 1
    finally:
        torch_compat.set_recompile_limit(before)


def test_kombu_channel_methods_the_transport_overrides() -> None:
    """``_brpop_read(**options)`` pops one item and raises ``queue.Empty`` when there is none;
    ``basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)`` registers the callback
    that every delivered message goes through."""
    read = inspect.signature(kombu_redis.Channel._brpop_read)
    assert [p.kind for p in read.parameters.values()] == [
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_KEYWORD]
    assert "raise Empty()" in inspect.getsource(kombu_redis.Channel._brpop_read)
    consume = inspect.signature(virtual.Channel.basic_consume)
    assert list(consume.parameters)[:5] == ["self", "queue", "no_ack", "callback", "consumer_tag"]
    assert "self.connection_errors = " in inspect.getsource(kombu_redis.Channel.__init__)
    assert kombu_redis.Channel.QoS is kombu_redis.QoS
    remove = inspect.signature(kombu_redis.QoS._remove_from_indices)
    assert list(remove.parameters) == ["self", "delivery_tag", "pipe"]
    assert "return pipe.zrem(" in inspect.getsource(kombu_redis.QoS._remove_from_indices)
