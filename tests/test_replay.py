"""Replayed steps (worker/engine/replay.py) compute bit for bit what the eager loops compute."""

from __future__ import annotations

import pytest
import torch

from bench import tutorial
from polyfit.models import FitRequest
from polyfit.worker.engine.approaches.optim import OPTIMIZERS
from polyfit.worker.engine.batched.polynomial import AutogradGradient
from polyfit.worker.engine.fit import Report, make_problem
from polyfit.worker.engine.replay import TRACE_PAYS_FROM, replayable
from polyfit.worker.engine.run import run_fit


def torch_optim_loop(request: FitRequest, start: list[float]) -> tuple[list[float], dict, float]:
    """The tutorial's optim loop with ``request``'s optimizer: coefficients, the losses at the
    recorded steps, final loss."""
    problem = make_problem(request, "cpu")
    xx = problem.powers(request.degree)[:, 1:].contiguous()  # the very tensor optim fits on
    model = tutorial._sequential(start, problem.x)
    loss_fn = torch.nn.MSELoss(reduction="sum")
    optimizer = OPTIMIZERS[request.optimizer](model.parameters(), lr=request.learning_rate)
    losses = {}
    for t in range(request.steps):
        loss = loss_fn(model(xx), problem.y)
        if t % request.record_every == request.record_every - 1:
            losses[t] = loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = loss_fn(model(xx), problem.y).item()
    return tutorial._coefficients(model), losses, final


@pytest.mark.parametrize("optimizer,learning_rate", [("rmsprop", None), ("sgd", 1e-6),
                                                     ("adam", 1e-2)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optim_equals_torch_optim_to_the_bit(optimizer, learning_rate, dtype):
    """RMSprop at its default rate hops around the optimum: one ulp anywhere on the way moves
    the final loss by ~0.5 %. The replay runs torch.optim's kernels in its order, on the same
    inputs, in this process: the same fit to the bit on any CPU."""
    request = FitRequest(approach="optim", seed=5, optimizer=optimizer, dtype=dtype,
                         learning_rate=learning_rate)
    result = run_fit(request, Report(request.record_every, request.steps), "cpu")
    coefficients, losses, final = torch_optim_loop(request,
                                                   list(result.initial_coefficients.values()))
    assert list(result.coefficients.values()) == coefficients
    assert dict(result.loss_history) == losses
    assert result.final_loss == final


def test_replay_updates_its_arguments_in_place_without_autograd():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    x = torch.tensor([0.5, 2.0])  # values whose arithmetic below is exact

    def step(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loss = (w * x).sum() ** 2
        (grad,) = torch.autograd.grad(loss, [w])
        w.detach().sub_(0.125 * grad)
        return loss.detach()

    expected = w.detach().clone()
    replay = replayable(step, w, x, calls=TRACE_PAYS_FROM)
    assert torch.equal(w.detach(), expected)  # tracing ran nothing
    for _ in range(3):
        loss = (expected * x).sum() ** 2
        expected -= 0.125 * 2 * (expected * x).sum() * x
        got = replay()
        assert got.item() == loss.item() and got.grad_fn is None
        assert torch.equal(w.detach(), expected)


def test_replay_calls_the_overload_whose_first_argument_is_not_self():
    """``where.self(condition, self, other)``, ``pow.Scalar(Scalar self, Tensor exponent)``
    and ``repeat_interleave.Tensor(repeats)`` have no method that takes their arguments in
    order (``condition.where(a, b)`` is where(a, condition, b)); and an ``x * 1`` whose x is
    written later is kept. Each step's numbers equal the eager step's to the bit."""
    def step(w: torch.Tensor, mask: torch.Tensor, other: torch.Tensor,
             counts: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
        picked = torch.where(mask, w, other)
        powered = torch.pow(2.0, w)
        spread = torch.repeat_interleave(counts).float()
        kept = scratch * 1
        scratch.add_(1.0)  # after the product above read it
        loss = (picked * powered).sum() + spread.sum() + kept.sum()
        (grad,) = torch.autograd.grad(loss, [w])
        w.detach().sub_(0.125 * grad)
        return loss.detach()

    def arguments() -> tuple[torch.Tensor, ...]:
        return (torch.tensor([0.5, -1.0, 0.25], requires_grad=True),
                torch.tensor([True, False, True]), torch.tensor([4.0, 8.0, 16.0]),
                torch.tensor([1, 2]), torch.zeros(3))

    eager, replayed = arguments(), arguments()
    replay = replayable(step, *replayed, calls=TRACE_PAYS_FROM)
    for _ in range(3):
        assert replay().item() == step(*eager).item()
        assert torch.equal(replayed[0].detach(), eager[0].detach())
        assert torch.equal(replayed[4], eager[4])


@pytest.mark.parametrize("approach", ["autograd", "legendre", "nn", "module", "dynamic"])
def test_replayed_fit_equals_its_steps_run_eagerly_to_the_bit(approach, monkeypatch):
    request = FitRequest(approach=approach, seed=2, steps=600, dtype="float32")
    replayed = run_fit(request, Report(request.record_every, request.steps), "cpu")
    monkeypatch.setattr("polyfit.worker.engine.descent.replayable",
                        lambda step, *args, calls: lambda: step(*args))
    eager = run_fit(request, Report(request.record_every, request.steps), "cpu")
    assert replayed.coefficients == eager.coefficients
    assert replayed.loss_history == eager.loss_history
    assert replayed.final_loss == eager.final_loss


@pytest.mark.parametrize("record", [False, True])
def test_batched_autograd_gradient_replayed_equals_eager(record):
    """Its replay computes no loss when it records none (the backward's seed does not need
    it) and skips autograd's no-ops: the same gradients to the bit."""
    x = torch.linspace(-3, 3, 500)
    powers, y = x.unsqueeze(-1).pow(torch.arange(4)), torch.sin(x)
    start = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    replayed = AutogradGradient(powers, y, start, steps=TRACE_PAYS_FROM)
    eager = AutogradGradient(powers, y, start, steps=1)
    assert torch.equal(replayed(record), eager(record))
    if record:
        assert torch.equal(replayed.losses(), eager.losses())
