"""FitRequest: defaults per approach, limits, and refusals that name the field."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from pydantic import ValidationError

from polyfit.models import APPROACHES, FitRequest
from polyfit.models.request import describe
from polyfit.models.settings import current_settings


def refusal(**fields) -> str:
    with pytest.raises(ValidationError) as caught:
        FitRequest(**fields)
    return describe(caught.value)


@pytest.mark.parametrize(
    ("approach", "steps", "learning_rate", "record_every", "dtype"),
    [
        ("numpy", 2000, 1e-6, 100, "float64"),
        ("tensor", 2000, 1e-6, 100, "float32"),
        ("autograd", 2000, 1e-6, 100, "float32"),
        ("legendre", 2000, 5e-6, 100, "float32"),
        ("nn", 2000, 1e-6, 100, "float32"),
        ("optim", 2000, 1e-3, 100, "float32"),
        ("module", 2000, 1e-6, 100, "float32"),
        ("dynamic", 30000, 1e-8, 2000, "float32"),
    ],
)
def test_defaults_follow_the_tutorial(approach, steps, learning_rate, record_every, dtype):
    request = FitRequest(approach=approach)
    assert (request.steps, request.learning_rate, request.record_every, request.dtype) == (
        steps, learning_rate, record_every, dtype)
    assert (request.target, request.n_points, request.degree) == ("sin", 2000, 3)
    assert (request.x_min, request.x_max) == (-math.pi, math.pi)
    assert request.device == "auto" and request.seed is None


def test_optimizer_and_momentum_defaults():
    assert FitRequest(approach="optim").optimizer == "rmsprop"
    dynamic = FitRequest(approach="dynamic")
    assert (dynamic.optimizer, dynamic.momentum) == ("sgd", 0.9)


@pytest.mark.parametrize(("approach", "optimizer", "learning_rate"), [
    ("optim", "rmsprop", 1e-3), ("optim", "sgd", 1e-6), ("optim", "adam", 1e-2),
    ("module", "sgd", 1e-6), ("module", "rmsprop", 1e-3), ("module", "adam", 1e-2)])
def test_the_default_learning_rate_follows_the_optimizer(approach, optimizer, learning_rate):
    """One default for SGD and RMSprop/Adam would diverge or crawl (see OPTIMIZER_LEARNING_RATE)."""
    request = FitRequest(approach=approach, optimizer=optimizer)
    assert request.learning_rate == learning_rate


def test_exact_takes_no_steps():
    request = FitRequest(approach="exact")
    assert request.steps is None and request.dtype == "float64"
    assert "steps" in refusal(approach="exact", steps=10)


def test_filled_request_validates_again_unchanged():
    for approach in APPROACHES:
        request = FitRequest(approach=approach, seed=1)
        assert FitRequest.model_validate(request.model_dump()) == request


def test_routing():
    assert FitRequest(approach="nn", device="cpu").queue == "cpu"
    assert FitRequest(approach="nn", device="cuda").queue == "cuda"
    assert FitRequest(approach="nn").queue == "cpu"  # auto follows POLYFIT_AUTO_QUEUE


def test_auto_queue_setting(monkeypatch):
    monkeypatch.setenv("POLYFIT_AUTO_QUEUE", "cuda")
    assert FitRequest(approach="nn").queue == "cuda"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"approach": "simplex"}, "approach"),
        ({}, "approach"),
        ({"approach": "nn", "steps": 0}, "steps"),
        ({"approach": "nn", "steps": -5}, "steps"),
        ({"approach": "nn", "learning_rate": 0}, "learning_rate"),
        ({"approach": "nn", "learning_rate": -1e-3}, "learning_rate"),
        ({"approach": "nn", "learning_rate": float("nan")}, "learning_rate"),
        ({"approach": "nn", "learning_rate": float("inf")}, "learning_rate"),
        ({"approach": "nn", "x_min": float("nan")}, "x_min"),
        ({"approach": "nn", "x_max": float("-inf")}, "x_max"),
        ({"approach": "nn", "x_min": 1.0, "x_max": 1.0}, "x_min"),
        ({"approach": "nn", "x_min": 2.0, "x_max": -2.0}, "x_min"),
        ({"approach": "nn", "n_points": 1}, "n_points"),
        ({"approach": "nn", "n_points": 10**9}, "n_points"),
        ({"approach": "nn", "steps": 10**9}, "steps"),
        ({"approach": "nn", "degree": 0}, "degree"),
        ({"approach": "nn", "degree": 50}, "degree"),
        ({"approach": "dynamic", "degree": 4}, "degree"),
        ({"approach": "nn", "target": "__import__('os')"}, "target"),
        ({"approach": "nn", "device": "tpu"}, "device"),
        ({"approach": "numpy", "device": "cuda"}, "device"),
        ({"approach": "nn", "dtype": "float16"}, "dtype"),
        ({"approach": "nn", "optimizer": "adam"}, "optimizer"),
        ({"approach": "dynamic", "optimizer": "rmsprop"}, "optimizer"),
        ({"approach": "optim", "optimizer": "lbfgs"}, "optimizer"),
        ({"approach": "nn", "momentum": 0.5}, "momentum"),
        ({"approach": "nn", "record_every": 0}, "record_every"),
        ({"approach": "nn", "seed": -1}, "seed"),
        ({"approach": "nn", "colour": "red"}, "colour"),
        ({"approach": "nn", "data": {"x": [1.0], "y": [2.0]}}, "data"),
        ({"approach": "nn", "data": {"x": [1.0, 2.0], "y": [1.0]}}, "data"),
        ({"approach": "nn", "data": {"x": [1.0, float("nan")], "y": [1.0, 2.0]}}, "data"),
        ({"approach": "nn", "data": {"x": [1.0, 1.0], "y": [1.0, 2.0]}}, "data"),
        ({"approach": "nn", "data": {"x": [0.0] * 100_001, "y": [0.0] * 100_001}}, "data"),
        ({"approach": "nn", "data": {"x": [0.0, 1.0], "y": [1.0, 2.0]}, "target": "exp"},
         "target: not used when data points are given"),
        ({"approach": "nn", "data": {"x": [0.0, 1.0], "y": [1.0, 2.0]}, "n_points": 50},
         "n_points: not used"),
        # values the fit's dtype cannot hold: the fit could only end in NaN
        ({"approach": "exact", "x_min": -1e308, "x_max": 1e308}, "x_min..x_max"),
        ({"approach": "exact", "target": "exp", "x_min": 0, "x_max": 1000}, "target: exp"),
        ({"approach": "nn", "target": "exp", "x_min": 0, "x_max": 100}, "overflows float32"),
        ({"approach": "nn", "x_min": -1e13, "x_max": 1}, "|x|^3 overflows float32"),
        ({"approach": "dynamic", "x_min": -1e8, "x_max": 1}, "|x|^5 overflows float32"),
        ({"approach": "nn", "data": {"x": [0.0, 1e39], "y": [1.0, 2.0]}}, "data: |x|^3"),
        ({"approach": "nn", "data": {"x": [0.0, 1.0], "y": [1.0, 1e39]}}, "data: y"),
    ],
)
def test_refusals_name_the_field(fields, named):
    assert named in refusal(**fields)


def test_float64_holds_what_float32_cannot():
    assert FitRequest(approach="nn", target="exp", x_min=0, x_max=100, dtype="float64")
    assert FitRequest(approach="nn", target="exp", x_min=0, x_max=88)
    assert FitRequest(approach="numpy", data={"x": [0.0, 1.0], "y": [1.0, 1e39]})


def test_limits_come_from_settings(monkeypatch):
    monkeypatch.setenv("POLYFIT_MAX_STEPS", "50")
    assert "steps" in refusal(approach="nn", steps=51)
    assert FitRequest(approach="nn", steps=50).steps == 50
    monkeypatch.setenv("POLYFIT_MAX_POINTS", "10")
    current_settings.cache_clear()
    assert "n_points" in refusal(approach="nn", n_points=11)


def test_models_store_and_client_import_without_torch():
    code = ("import sys, polyfit.models, polyfit.store, polyfit.client, polyfit.client.cli, "
            "polyfit.client.local; assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("length", [1, 255, 256, 257, 1000, 60_001])
def test_a_running_jobs_history_is_thinned_evenly_keeping_its_ends(length):
    from polyfit.models.job import PROGRESS_HISTORY, thinned

    history = [(step, float(step)) for step in range(length)]
    kept = thinned(history)
    if length <= PROGRESS_HISTORY:
        assert kept == history
    else:
        assert PROGRESS_HISTORY // 2 < len(kept) <= PROGRESS_HISTORY
    assert kept[0] == history[0] and kept[-1] == history[-1]
    gaps = {b[0] - a[0] for a, b in zip(kept[:-2], kept[1:-1], strict=True)}
    assert len(gaps) <= 1  # evenly spaced, but for the last
