"""Compiled fits (POLYFIT_COMPILE, worker/engine/descent.py): the same numbers as replayed fits, in
process and from a real worker's pool process; a worker that could not compile refuses to
start."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
import torch

from conftest import BIN, requires_cuda
from polyfit.client import PolyfitClient
from polyfit.models import FitRequest
from polyfit.worker.engine.approaches import COMPILED, compiles
from polyfit.worker.engine.fit import Report
from polyfit.worker.engine.run import run_fit


def sgd_request(approach: str, **fields) -> FitRequest:
    """A request that compiles: optim with the sgd optimizer (its default RMSprop does not)."""
    if approach == "optim":
        fields = {"optimizer": "sgd", "learning_rate": 1e-6, **fields}
    return FitRequest(approach=approach, **fields)


def fit(request: FitRequest, device: str, compiled: bool):
    return run_fit(request, Report(request.record_every, request.steps), device, compiled)


def assert_same_fit(compiled, replayed, rel: float) -> None:
    got = np.array(list(compiled.coefficients.values()))
    want = np.array(list(replayed.coefficients.values()))
    assert np.linalg.norm(got - want) <= rel * np.linalg.norm(want)
    assert compiled.final_loss == pytest.approx(replayed.final_loss, rel=rel)
    steps = [step for step, _ in replayed.loss_history]
    assert [step for step, _ in compiled.loss_history] == steps
    assert [loss for _, loss in compiled.loss_history] == pytest.approx(
        [loss for _, loss in replayed.loss_history], rel=rel)
    assert compiled.initial_coefficients == replayed.initial_coefficients


@pytest.mark.parametrize("approach", COMPILED)
@pytest.mark.parametrize("steps", [300, 37])  # ten steps a call; 37 has no divisor but 1
def test_compiled_fit_equals_the_replayed_one(approach, steps):
    request = sgd_request(approach, seed=5, steps=steps, record_every=10)
    compiled, replayed = fit(request, "cpu", True), fit(request, "cpu", False)
    assert compiled.compiled and not replayed.compiled
    assert_same_fit(compiled, replayed, rel=1e-5)


@pytest.mark.parametrize("fields", [
    {"approach": "optim"}, {"approach": "optim", "optimizer": "adam"},
    {"approach": "module", "optimizer": "rmsprop"}, {"approach": "tensor"}, {"approach": "numpy"},
    {"approach": "dynamic"},
])
def test_requests_that_cannot_compile_do_not(fields):
    request = FitRequest(seed=5, steps=30, **fields)
    assert not compiles(request)
    assert not fit(request, "cpu", True).compiled


def test_compiled_float64_and_another_degree():
    request = FitRequest(approach="autograd", seed=2, steps=100, dtype="float64", degree=5,
                         learning_rate=1e-9)
    assert_same_fit(fit(request, "cpu", True), fit(request, "cpu", False), rel=1e-10)


def test_a_compiled_fit_that_diverges_fails_at_its_recorded_step():
    request = FitRequest(approach="legendre", seed=0, steps=200, learning_rate=1.0,
                         record_every=50)
    with pytest.raises(Exception, match="diverged at step 49"):
        fit(request, "cpu", True)


@requires_cuda()
@pytest.mark.cuda
@pytest.mark.parametrize("approach", COMPILED)
def test_compiled_on_cuda_equals_cpu(approach):
    request = sgd_request(approach, seed=5, steps=300)
    assert_same_fit(fit(request, "cuda", True), fit(request, "cpu", False), rel=1e-4)


@pytest.mark.integration
def test_a_compiling_worker_runs_the_published_legendre_fit(redis_server, start_worker):
    start_worker(redis_server.url, env={"POLYFIT_COMPILE": "true"})
    client = PolyfitClient(redis_server.url)
    first = client.wait(client.submit(FitRequest(approach="legendre", seed=0)), timeout=180)
    again = client.wait(client.submit(FitRequest(approach="legendre", seed=0)), timeout=60)
    for record in (first, again):
        assert record.result.compiled
        assert record.result.final_loss == pytest.approx(8.9436, abs=1e-3)
        assert dict(record.result.loss_history)[99] == pytest.approx(209.958, abs=0.01)


@pytest.mark.parametrize(("args", "path", "refusal"), [
    ([], "empty", "POLYFIT_COMPILE is set but no C++ compiler"),
    (["--pool", "threads"], os.environ["PATH"], "POLYFIT_COMPILE needs --pool prefork or solo"),
])
def test_a_worker_that_cannot_compile_refuses_to_start(tmp_path, args, path, refusal):
    env = {**os.environ, "POLYFIT_COMPILE": "1", "PATH": str(tmp_path) if path == "empty" else path,
           "CXX": "no-such-cxx", "POLYFIT_REDIS_URL": "redis://127.0.0.1:1/0"}
    run = subprocess.run([str(BIN / "polyfit-worker"), *args], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2
    assert refusal in run.stderr
    assert "Traceback" not in run.stderr


def test_a_fit_past_the_compiled_graphs_bound_runs_replayed(monkeypatch):
    """Each new shape is one more compiled graph; past ``COMPILED_GRAPHS`` in a process a fit
    runs replayed (and says so) instead of failing on torch's recompile limit, which is set
    above the bound: here the bound is 1 and torch's limit 2, as in the report of the bug
    with a limit of 2 (every later job with a new shape failed)."""
    from polyfit.worker.engine import descent
    from polyfit.worker.engine.torch_compat import set_recompile_limit

    monkeypatch.setattr(descent, "_graphs", set())
    monkeypatch.setattr(descent, "COMPILED_GRAPHS", 1)
    torch._dynamo.reset()
    set_recompile_limit(2)
    try:
        shapes = [FitRequest(approach="autograd", seed=5, steps=20, n_points=n)
                  for n in (101, 202, 303, 404)]
        results = [fit(request, "cpu", True) for request in shapes]
        assert [result.compiled for result in results] == [True, False, False, False]
        for request, result in zip(shapes[1:], results[1:], strict=True):
            assert result == fit(request, "cpu", False).model_copy(
                update={"fit_seconds": result.fit_seconds})
        assert fit(shapes[0], "cpu", True).compiled  # its graph is kept
    finally:
        set_recompile_limit(descent.COMPILED_GRAPHS + 8)
        torch._dynamo.reset()
