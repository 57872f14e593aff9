"""Every torch approach on cuda gives what it gives on cpu (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import noisy_line, requires_cuda
from polyfit.models import FitRequest
from polyfit.worker.engine.fit import Report
from polyfit.worker.engine.run import resolve_device, run_fit

pytestmark = [pytest.mark.cuda, requires_cuda()]

TORCH_APPROACHES = ["tensor", "autograd", "legendre", "nn", "optim", "module", "dynamic"]


def run_on(device: str, request: FitRequest):
    return run_fit(request, Report(request.record_every, request.steps), device)


# RMSprop at lr 1e-3 hops around the optimum from about step 1200 on, where each step's
# size no longer shrinks with the gradient, so rounding differences between devices grow;
# optim is compared over its first 1000 steps, while it still descends.
STEPS = {"dynamic": 3000, "optim": 1000}


@pytest.mark.parametrize("approach", TORCH_APPROACHES)
def test_cuda_matches_cpu(approach):
    request = FitRequest(approach=approach, seed=4, device="cuda", steps=STEPS.get(approach))
    on_cuda, on_cpu = run_on("cuda", request), run_on("cpu", request)
    assert on_cuda.device == "cuda"
    assert on_cuda.initial_coefficients == on_cpu.initial_coefficients
    assert on_cuda.final_loss == pytest.approx(on_cpu.final_loss, rel=1e-3)
    got, want = (np.array(list(r.coefficients.values())) for r in (on_cuda, on_cpu))
    assert np.linalg.norm(got - want) <= 1e-3 * np.linalg.norm(want)


def test_auto_picks_cuda():
    assert resolve_device(FitRequest(approach="nn")) == "cuda"
    assert resolve_device(FitRequest(approach="numpy")) == "cpu"


@pytest.mark.parametrize("approach", ["tensor", "legendre", "nn"])
def test_weighted_fits_on_cuda_equal_the_cpus(approach):
    """σ per point: the χ² each device descends on."""
    x, y, sigma = noisy_line()
    data = {"x": x.tolist(), "y": y.tolist(), "sigma": sigma.tolist()}
    request = FitRequest(approach=approach, seed=1, steps=200, dtype="float64", data=data,
                         learning_rate=1e-5)
    on = {device: run_on(device, request) for device in ("cpu", "cuda")}
    assert on["cuda"].final_loss == pytest.approx(on["cpu"].final_loss, rel=1e-9)
