"""How a worker process runs its fits: warmed up before its first job, its traced steps kept
for the next jobs of the same shape, on one thread for small problems."""

from __future__ import annotations

import logging

import pytest
import torch

from polyfit.models import FitRequest
from polyfit.worker.engine import replay
from polyfit.worker.engine.approaches import APPROACHES
from polyfit.worker.engine.fit import Report
from polyfit.worker.engine.replay import TRACE_PAYS_FROM, replayable
from polyfit.worker.engine.run import run_fit
from polyfit.worker.engine.threads import THREADS_PAY_FROM, use_threads_for
from polyfit.worker.engine.warm import warm_up


def test_after_the_warm_up_a_default_job_of_every_approach_traces_nothing(monkeypatch, caplog):
    """The warm-up's short fits trace each approach's steps (on TorchScript: no step falls
    back to Python), and a job with the defaults, of any length, reuses them."""
    with caplog.at_level(logging.WARNING, logger="polyfit.worker"):
        warm_up()
    assert not [r for r in caplog.records if "replays in Python" in r.getMessage()]

    def no_tracing(*args, **kwargs):
        raise AssertionError("traced a step after the warm-up")

    monkeypatch.setattr(replay, "make_fx", no_tracing)
    for approach in APPROACHES:
        request = FitRequest(approach=approach, seed=3)
        if request.steps:
            request = request.model_copy(update={"steps": 2 * TRACE_PAYS_FROM + 7})
        result = run_fit(request, Report(request.record_every or 1, request.steps or 0), "cpu")
        assert result.steps_run == (request.steps or 0)


def test_a_kept_step_replays_on_new_tensors_to_the_bit(monkeypatch):
    """The second replayable of the same step and signature traces nothing and computes, on
    its own tensors, what the step run eagerly computes."""
    def step(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loss = ((w * x).sum() - 1.0) ** 2
        (grad,) = torch.autograd.grad(loss, [w])
        w.detach().sub_(0.01 * grad)
        return loss.detach()

    def arguments(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return (torch.randn(5, generator=generator).requires_grad_(),
                torch.randn(5, generator=generator))

    replayable(step, *arguments(0), calls=TRACE_PAYS_FROM)
    monkeypatch.setattr(replay, "make_fx", lambda *a, **k: pytest.fail("traced again"))
    replayed, eager = arguments(1), arguments(1)
    run = replayable(step, *replayed, calls=1)  # kept: used even for one call
    for _ in range(3):
        assert run().item() == step(*eager).item()
        assert torch.equal(replayed[0].detach(), eager[0].detach())


def test_a_step_with_tensors_of_its_own_is_not_kept():
    """A tensor the step makes from Python values is a constant of its graph, which might
    differ the next time: such a step is traced for each replayable."""
    calls = []

    def step(w: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = (w * torch.tensor([2.0, 3.0])).sum() ** 2
        (grad,) = torch.autograd.grad(loss, [w])
        w.detach().sub_(0.01 * grad)
        return loss.detach()

    for _ in range(2):
        replayable(step, torch.ones(2, requires_grad=True), calls=TRACE_PAYS_FROM)
    assert len(calls) == 2


def test_small_fits_run_on_one_thread_large_ones_on_the_share():
    before = torch.get_num_threads()
    try:
        assert use_threads_for(2000, 2) == 1 and torch.get_num_threads() == 1
        assert use_threads_for(THREADS_PAY_FROM - 1, 2) == 1
        assert use_threads_for(THREADS_PAY_FROM, 2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
