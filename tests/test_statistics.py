"""Fit statistics (models/statistics.py) against references computed here another way:
NumPy's lstsq and the textbook formulas, a finite-difference Jacobian for legendre, published
Student t quantiles, and the coverage of the confidence intervals over many noisy data sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial import Legendre
from rich.console import Console

from polyfit.client.render import show_result
from polyfit.models import FitRequest, JobRecord, JobState
from polyfit.models.statistics import fit_statistics, t_quantile
from polyfit.models.sweep import SweepRequest
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import Report, make_problem
from polyfit.worker.engine.run import run_fit
from polyfit.worker.engine.sweep import run_sweep

TRUE_CUBIC = np.array([0.5, -1.0, 0.25, 0.8])  # a, b, c, d of the data's cubic
NOISE = 0.3


def noisy_cubic(seed: int, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.linspace(-2, 2, n)
    return x, np.polynomial.polynomial.polyval(x, TRUE_CUBIC) + rng.normal(0, NOISE, n)


def fit(**fields):
    request = FitRequest(**fields)
    return run_fit(request, Report(request.record_every or 1, request.steps or 0), "cpu")


@pytest.mark.parametrize(("probability", "dof", "quantile"), [
    (0.975, 1, 12.706204736174704), (0.975, 2, 4.302652729749464), (0.975, 5, 2.570581835636314),
    (0.975, 10, 2.228138851986274), (0.975, 36, 2.028094000980452), (0.95, 3, 2.353363434801823)])
def test_t_quantiles_match_published_values(probability, dof, quantile):
    assert t_quantile(probability, dof) == pytest.approx(quantile, rel=1e-6)


@pytest.mark.parametrize("degree", range(1, 8))
def test_exact_statistics_equal_lstsq_and_the_formulas(degree):
    x, y = noisy_cubic(seed=degree)
    result = fit(approach="exact", degree=degree, data={"x": x.tolist(), "y": y.tolist()})
    stats = result.statistics
    design = np.vander(x, degree + 1, increasing=True)
    w, *_ = np.linalg.lstsq(design, y, rcond=None)
    n, p = design.shape
    sse = float(((design @ w - y) ** 2).sum())
    sst = float(((y - y.mean()) ** 2).sum())
    variance = sse / (n - p)
    covariance = variance * np.linalg.inv(design.T @ design)
    errors = np.sqrt(np.diag(covariance))
    half = t_quantile(0.975, n - p) * errors
    r_squared = 1 - sse / sst

    assert list(result.coefficients.values()) == pytest.approx(w, rel=1e-9, abs=1e-12)
    assert (stats.n_points, stats.n_coefficients) == (n, p)
    assert stats.sse == pytest.approx(sse, rel=1e-9)
    assert stats.sst == pytest.approx(sst, rel=1e-9)
    assert stats.residual_variance == pytest.approx(variance, rel=1e-9)
    assert stats.r_squared == pytest.approx(r_squared, rel=1e-9)
    assert stats.adjusted_r_squared == pytest.approx(1 - (1 - r_squared) * (n - 1) / (n - p),
                                                     rel=1e-9)
    assert stats.aic == pytest.approx(n * math.log(sse / n) + 2 * p, rel=1e-9)
    assert stats.bic == pytest.approx(n * math.log(sse / n) + p * math.log(n), rel=1e-9)
    # the covariances of even with odd powers are 0 on symmetric x: rounding, to the scale
    scale = np.abs(covariance).max()
    assert np.array(stats.covariance) == pytest.approx(covariance, rel=1e-9, abs=1e-12 * scale)
    assert list(stats.standard_errors.values()) == pytest.approx(errors, rel=1e-9)
    for (low, high), value, width in zip(stats.confidence_intervals.values(), w, half,
                                         strict=True):
        assert (low, high) == pytest.approx((value - width, value + width), rel=1e-9, abs=1e-12)
    assert stats.gap_to_optimum == pytest.approx(0, abs=1e-9) and stats.converged


def test_legendre_covariance_is_curve_fits_at_the_returned_coefficients():
    """curve_fit's pcov, σ²(JᵀJ)⁻¹, with J by central differences of a + b·P3(c + d·x)."""
    result = fit(approach="legendre", seed=0)
    x, y = make_problem(FitRequest(approach="legendre"), "cpu").float64()  # the fitted points
    values = np.array(list(result.coefficients.values()))

    def model(v: np.ndarray) -> np.ndarray:
        return v[0] + v[1] * Legendre.basis(3)(v[2] + v[3] * x)

    step = 1e-6 * np.maximum(np.abs(values), 1.0)
    jacobian = np.stack([(model(values + np.eye(4)[i] * step[i])
                          - model(values - np.eye(4)[i] * step[i])) / (2 * step[i])
                         for i in range(4)], axis=1)
    sse = float(((model(values) - y) ** 2).sum())
    covariance = sse / (len(x) - 4) * np.linalg.inv(jacobian.T @ jacobian)
    stats = result.statistics
    assert stats.sse == pytest.approx(sse, rel=1e-9)
    assert np.array(stats.covariance) == pytest.approx(covariance, rel=1e-5)
    assert stats.gap_to_optimum is None and stats.converged is None
    assert any("no closed-form optimum" in note for note in stats.notes)


def test_legendre_descent_ends_near_its_gauss_newton_optimum():
    """Gauss–Newton from the returned coefficients finds the model's own optimum: the
    published 2000-step descent is within 2 % of it."""
    result = fit(approach="legendre", seed=0)
    x, y = make_problem(FitRequest(approach="legendre"), "cpu").float64()  # the fitted points
    v = np.array(list(result.coefficients.values()))
    p3, dp3 = Legendre.basis(3), Legendre.basis(3).deriv()
    for _ in range(50):
        t = v[2] + v[3] * x
        residual = v[0] + v[1] * p3(t) - y
        jacobian = np.stack([np.ones_like(x), p3(t), v[1] * dp3(t), v[1] * dp3(t) * x], axis=1)
        v = v - np.linalg.lstsq(jacobian, residual, rcond=None)[0]
    optimum = float(((v[0] + v[1] * p3(v[2] + v[3] * x) - y) ** 2).sum())
    assert optimum <= result.statistics.sse <= optimum * 1.02


def test_confidence_intervals_cover_the_true_coefficients_at_the_nominal_rate():
    """400 data sets of a known cubic plus Gaussian noise: each coefficient's 95 % interval
    holds the true value in 95 % ± 3.3 % of them (three binomial standard deviations)."""
    trials = 400
    covered = np.zeros(4)
    for seed in range(trials):
        x, y = noisy_cubic(seed=1000 + seed)
        stats = fit_statistics("exact", 3, x, y, dict(zip("abcd", np.linalg.lstsq(
            np.vander(x, 4, increasing=True), y, rcond=None)[0], strict=True)))
        for i, (low, high) in enumerate(stats.confidence_intervals.values()):
            covered[i] += low <= TRUE_CUBIC[i] <= high
    rates = covered / trials
    assert np.all(np.abs(rates - 0.95) <= 3 * math.sqrt(0.95 * 0.05 / trials)), rates


def test_dynamic_reports_fit_quality_and_says_why_it_has_no_covariance():
    stats = fit(approach="dynamic", seed=3, steps=2000, record_every=500).statistics
    assert stats.n_coefficients == 5 and stats.r_squared is not None and stats.aic is not None
    assert stats.covariance is None and stats.standard_errors is None
    assert stats.confidence_intervals is None and stats.gap_to_optimum is None
    assert any("changes every step" in note for note in stats.notes)


def test_a_singular_jacobian_is_said_not_inverted():
    x = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 1.0])  # three distinct x, six coefficients
    y = x**2
    stats = fit_statistics("exact", 5, x, y, dict(zip("abcdef", [0.0, 0, 1, 0, 0, 0],
                                                      strict=True)))
    assert stats.covariance is None and stats.confidence_intervals is None
    assert any(note.startswith("3 distinct x for 6 coefficients: the data cannot tell")
               for note in stats.notes)
    assert stats.r_squared == pytest.approx(1.0)


def test_an_unconverged_descent_is_flagged_in_the_result_table():
    result = fit(approach="nn", seed=1, steps=200)
    assert result.statistics.converged is False and result.statistics.gap_to_optimum > 1e-3
    record = JobRecord(job_id="0" * 32, state=JobState.SUCCEEDED, queue="cpu",
                       request=FitRequest(approach="nn", seed=1, steps=200).model_dump(
                           mode="json"), submitted_at=0.0, result=result)
    console = Console(record=True, width=160)
    show_result(record, console)
    text = console.export_text()
    assert "not converged: the loss is" in text and "95 % confidence interval" in text
    assert f"R² {result.statistics.r_squared:.6g}" in text and "BIC" in text
    document = record.to_document()["statistics"]
    assert document["converged"] is False and set(document["standard_errors"]) == set("abcd")


def test_sweep_members_carry_their_single_jobs_statistics():
    base = FitRequest(approach="nn", steps=300, device="cpu")
    requests = SweepRequest(base=base, learning_rates=[1e-6, 2e-6], seeds=[0, 1]).members()
    for request, member in zip(requests, run_sweep(requests, BatchReport(4, 100, 300), "cpu"),
                               strict=True):
        alone = run_fit(request, Report(request.record_every, request.steps), "cpu").statistics
        assert member.statistics.aic == pytest.approx(alone.aic, rel=1e-5)
        assert member.statistics.standard_errors == pytest.approx(alone.standard_errors,
                                                                  rel=1e-5)


def test_bic_over_degrees_picks_the_cubic_of_noisy_cubic_data():
    x, y = noisy_cubic(seed=7, n=200)
    base = FitRequest(approach="exact", data={"x": x.tolist(), "y": y.tolist()})
    requests = SweepRequest(base=base, degrees=list(range(1, 10))).members()
    results = run_sweep(requests, BatchReport(len(requests), 1, 0), "cpu")
    by_bic = min(zip(requests, results, strict=True), key=lambda pair: pair[1].statistics.bic)
    by_loss = min(zip(requests, results, strict=True), key=lambda pair: pair[1].final_loss)
    assert by_bic[0].degree == 3 and by_loss[0].degree == 9
