"""The least-squares core (models/least_squares.py) against answers computed exactly, in
rational arithmetic, from the same float64 data (bench/hard_problems.py), in significant
digits; weights against the weighted normal equations and curve_fit's covariance formulas;
and the fitted curve's invariance under shifts of x and scalings of y."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.hard_problems import certify, digits, exact_chi_square, exact_value, hard_problems
from conftest import cli, noisy_line
from polyfit.client.status import ExitStatus
from polyfit.models import FitRequest
from polyfit.models.least_squares import fit_polynomial
from polyfit.models.statistics import fit_statistics
from polyfit.models.sweep import SweepRequest
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import Report
from polyfit.worker.engine.run import run_fit
from polyfit.worker.engine.sweep import run_sweep

PROBLEMS = {problem.name: problem for problem in hard_problems()}


@pytest.fixture(scope="module")
def certified():
    return {name: certify(problem) for name, problem in PROBLEMS.items()}


def exact_job(data: dict, degree: int, **fields):
    request = FitRequest(approach="exact", degree=degree, data=data, **fields)
    return run_fit(request, Report(1, 0), "cpu")


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_exact_fits_reach_the_certified_digits(name, certified):
    """≥ 7 digits in every coefficient, ≥ 5 in every standard error, ≥ 6 in the residual
    standard deviation and R², through the exact approach as a job runs it."""
    problem, answer = PROBLEMS[name], certified[name]
    result = exact_job(problem.data(), problem.degree)
    stats = result.statistics
    coefficient_digits = [digits(c, e) for c, e in zip(result.coefficients.values(),
                                                       answer.coefficients, strict=True)]
    assert min(coefficient_digits) >= 7, coefficient_digits
    if name != "wide-5-exact":  # zero residuals: test_exactly_polynomial_data_has_no_residual
        error_digits = [digits(c, e) for c, e in zip(stats.standard_errors.values(),
                                                     answer.standard_errors, strict=True)]
        assert min(error_digits) >= 5, error_digits
        assert digits(math.sqrt(stats.residual_variance), answer.residual_sd) >= 6
        assert digits(stats.chi_square, answer.chi_square) >= 6
        assert digits(result.optimum_loss, answer.chi_square) >= 6
        assert stats.converged and stats.gap_to_optimum == pytest.approx(0, abs=1e-9)
        assert not stats.notes
    assert digits(stats.r_squared, answer.r_squared) >= 6


def test_the_clustered_problem_defeats_the_raw_power_basis(certified):
    """The naive solve (lstsq on [1, x, …, x¹⁰]) keeps no correct digit here: the problem is
    as hard as it claims."""
    problem = PROBLEMS["clustered-10"]
    raw = np.linalg.lstsq(np.vander(problem.x, 11, increasing=True), problem.y, rcond=None)[0]
    assert min(digits(c, e) for c, e in zip(raw, certified["clustered-10"].coefficients,
                                            strict=True)) < 1


def test_exactly_polynomial_data_has_no_residual():
    problem = PROBLEMS["wide-5-exact"]
    stats = exact_job(problem.data(), 5).statistics
    scale = np.abs(problem.y).max()
    assert stats.sse <= (1e-8 * scale) ** 2
    assert all(error <= 1e-8 for error in stats.standard_errors.values())  # coefficients are 1


def test_the_optimum_and_convergence_are_judged_against_the_true_minimum(certified):
    """A member near the optimum, on the clustered problem (where the raw solver reported an
    "optimum" 35 % above the minimum): its χ² and its gap to the optimum, against both
    computed exactly."""
    problem, answer = PROBLEMS["clustered-10"], certified["clustered-10"]
    near = list(answer.coefficients)
    near[10] *= 1 + 1e-7
    stats = fit_statistics("exact", 10, problem.x, problem.y,
                           dict(zip("abcdefghijk", near, strict=True)))
    exact = exact_chi_square(problem, near)
    minimum = exact_chi_square(problem, answer.coefficients)
    assert digits(stats.chi_square, float(exact)) >= 6
    assert digits(stats.gap_to_optimum, float((exact - minimum) / minimum)) >= 3
    assert stats.converged is (stats.gap_to_optimum <= 1e-3)


def test_the_singular_note_says_which_case():
    few = np.array([0.0, 1.0, 2.0] * 4)
    stats = fit_statistics("exact", 5, few, few**2,
                           dict(zip("abcdef", [0.0, 0, 1, 0, 0, 0], strict=True)))
    assert stats.covariance is None
    assert stats.notes == ["3 distinct x for 6 coefficients: the data cannot tell every "
                           "coefficient apart"]
    close = np.array([0.0] * 20 + [1e-9, 2e-9] + [1.0] * 20)  # 4 distinct x, 2 of them 1e-9 off
    stats = fit_statistics("exact", 3, close, close, dict(zip("abcd", [0.0, 1, 0, 0], strict=True)))
    assert stats.covariance is None
    assert len(stats.notes) == 1 and stats.notes[0].startswith(
        "the x are too close together for degree 3")


def test_fewer_points_than_coefficients_fit_exactly_without_a_covariance():
    x = np.array([-1.0, 0.0, 0.5, 2.0, 3.0])
    result = exact_job({"x": x.tolist(), "y": np.exp(x).tolist()}, 8)
    stats = result.statistics
    assert stats.covariance is None and stats.sse <= 1e-20
    assert "5 distinct x for 9 coefficients: the data cannot tell every coefficient apart" in (
        stats.notes)


def test_well_spread_points_are_never_called_singular():
    for degree in range(1, 11):
        x = np.linspace(1e6, 1e6 + 1, degree + 1)  # just enough distinct x, far from 0
        assert fit_polynomial(x, np.cos(x - 1e6), degree).singular is None


# Weights


@pytest.mark.parametrize("absolute", [False, True])
def test_weighted_exact_fit_is_numpys_weighted_lstsq_with_curve_fits_covariance(absolute):
    x, y, sigma = noisy_line()
    result = exact_job({"x": x.tolist(), "y": y.tolist(), "sigma": sigma.tolist()}, 2,
                       absolute_sigma=absolute)
    stats = result.statistics
    expected = np.polynomial.polynomial.polyfit(x, y, 2, w=1 / sigma)
    assert list(result.coefficients.values()) == pytest.approx(expected, rel=1e-10)
    # curve_fit: pcov = (JᵀWJ)⁻¹, times χ²/(n − p) unless absolute_sigma
    jacobian = np.vander(x, 3, increasing=True) / sigma[:, None]
    chi_square = float((((y - jacobian @ expected * sigma) / sigma) ** 2).sum())
    pcov = np.linalg.inv(jacobian.T @ jacobian)
    if not absolute:
        pcov *= chi_square / (len(x) - 3)
    assert np.array(stats.covariance) == pytest.approx(pcov, rel=1e-9)
    assert stats.chi_square == pytest.approx(chi_square, rel=1e-10)
    assert result.final_loss == pytest.approx(chi_square, rel=1e-10)
    assert stats.reduced_chi_square == pytest.approx(chi_square / (len(x) - 3), rel=1e-10)
    assert stats.weighted and stats.absolute_sigma is absolute
    weights = 1 / sigma**2
    mean = np.average(y, weights=weights)
    assert stats.r_squared == pytest.approx(1 - chi_square / (weights * (y - mean) ** 2).sum(),
                                            rel=1e-10)


def test_weighted_hard_problem_reaches_the_certified_digits_with_absolute_sigma(certified):
    problem, answer = PROBLEMS["weighted-10"], certified["weighted-10"]
    stats = exact_job(problem.data(), 10, absolute_sigma=True).statistics
    reduced = answer.chi_square / (82 - 11)
    for computed, relative in zip(stats.standard_errors.values(), answer.standard_errors,
                                  strict=True):
        assert digits(computed, relative / math.sqrt(reduced)) >= 5


DESCENTS = ["numpy", "tensor", "autograd", "legendre", "nn", "optim", "module", "dynamic"]


def model_values(approach: str, coefficients: dict[str, float], x: np.ndarray) -> np.ndarray:
    v = list(coefficients.values())
    if approach == "legendre":
        return v[0] + v[1] * np.polynomial.Legendre.basis(3)(v[2] + v[3] * x)
    if approach == "dynamic":
        return np.polynomial.polynomial.polyval(x, v[:4] + [v[4], v[4]])
    return np.polynomial.polynomial.polyval(x, v)


@pytest.mark.parametrize("approach", DESCENTS)
def test_every_descent_minimises_the_weighted_loss(approach):
    """Its loss is χ² = Σ((f − y)/σ)² of its own coefficients (computed here in float64), and
    σ = 2 everywhere is the unweighted descent at a quarter of the learning rate."""
    x, y, sigma = noisy_line()
    data = {"x": x.tolist(), "y": y.tolist(), "sigma": sigma.tolist()}
    fields = {"approach": approach, "seed": 3, "steps": 300, "dtype": "float64"}
    weighted = run_fit(FitRequest(**fields, data=data), Report(100, 300), "cpu")
    chi_square = ((model_values(approach, weighted.coefficients, x) - y) / sigma) ** 2
    assert weighted.final_loss == pytest.approx(chi_square.sum(), rel=1e-9)

    rate = FitRequest(**fields).learning_rate
    halved = run_fit(FitRequest(**fields, data={**data, "sigma": [2.0] * 30}), Report(100, 300),
                     "cpu")
    # RMSprop divides the gradient by its own running size: σ = 2 changes nothing there
    plain_rate = rate if approach == "optim" else rate / 4
    plain = run_fit(FitRequest(**fields, learning_rate=plain_rate,
                               data={"x": data["x"], "y": data["y"]}), Report(100, 300), "cpu")
    assert list(halved.coefficients.values()) == pytest.approx(
        list(plain.coefficients.values()), rel=1e-6, abs=1e-9)
    assert halved.final_loss == pytest.approx(plain.final_loss / 4, rel=1e-6)


def test_weighted_sweep_members_equal_their_single_jobs():
    x, y, sigma = noisy_line()
    data = {"x": x.tolist(), "y": y.tolist(), "sigma": sigma.tolist()}
    for approach in ("nn", "numpy", "legendre", "exact"):
        fields = {} if approach == "exact" else {"steps": 200, "dtype": "float64"}
        base = FitRequest(approach=approach, device="cpu", data=data, **fields)
        axes = ({"degrees": [1, 2, 3]} if approach == "exact" else
                {"learning_rates": [1e-5, 2e-5], "seeds": [0, 1]})
        requests = SweepRequest(base=base, **axes).members()
        members = run_sweep(requests, BatchReport(len(requests), 100, 200), "cpu")
        for request, member in zip(requests, members, strict=True):
            alone = run_fit(request, Report(request.record_every or 1, request.steps or 0),
                            "cpu")
            assert member.final_loss == pytest.approx(alone.final_loss, rel=1e-6)
            assert member.statistics.chi_square == pytest.approx(alone.statistics.chi_square,
                                                                 rel=1e-6)


@pytest.mark.integration
def test_a_weighted_csv_through_the_cli_and_a_worker(service, tmp_path):
    """x,y,sigma in the file, --absolute-sigma: the printed result says how it was weighted and
    the covariance is (JᵀWJ)⁻¹ unscaled (curve_fit's absolute_sigma)."""
    client, _ = service
    x, y, sigma = noisy_line()
    path = tmp_path / "weighted.csv"
    rows = zip(x.tolist(), y.tolist(), sigma.tolist(), strict=True)
    path.write_text("x,y,sigma\n" + "".join(f"{a!r},{b!r},{c!r}\n" for a, b, c in rows))
    url = ["--redis-url", client.redis_url]
    printed = cli(*url, "submit", "--approach", "exact", "--degree", "2", "--data", str(path),
                  "--absolute-sigma", "--wait")
    assert printed.returncode == ExitStatus.SUCCESS, printed.stderr
    assert "weighted by 1/σ²: χ² " in printed.stdout
    assert "σ absolute: the covariance is not scaled" in printed.stdout
    job_id = printed.stderr.strip().splitlines()[0]
    document = json.loads(cli(*url, "result", job_id, "--json").stdout)
    jacobian = np.vander(x, 3, increasing=True) / sigma[:, None]
    pcov = np.linalg.inv(jacobian.T @ jacobian)
    assert np.array(document["statistics"]["covariance"]) == pytest.approx(pcov, rel=1e-9)
    assert document["request"]["data"]["sigma"] == sigma.tolist()


# Invariance


def exact_predictions(coefficients: list[float], x: list[Fraction]) -> list[Fraction]:
    return [exact_value(coefficients, point) for point in x]


@settings(max_examples=60, deadline=None)
@given(degree=st.integers(1, 4),
       grid=st.lists(st.integers(-640, 640), min_size=12, max_size=30, unique=True),
       noise=st.lists(st.floats(-1, 1), min_size=30, max_size=30),
       reach=st.floats(-1, 1), scale=st.sampled_from([1e-6, 0.125, 3.0, 1e5]))
def test_shifting_x_or_scaling_y_leaves_the_predictions_unchanged(degree, grid, noise, reach,
                                                                   scale):
    """x on a grid of 1/64, shifted by a multiple of 1/64 (so x + shift is exact in float64);
    predictions evaluated exactly from the returned coefficients, compared to 1e-9 of the
    largest prediction. Shifts reach (shift/span)^degree ≤ 1e4: far beyond, no float64
    power-basis coefficients hold the curve to 1e-9 (rounding each wₖ moves a prediction by
    up to 1e-16·|wₖxᵏ|), and near 1e5 polyfit's error, about ten times that of the exact
    answer rounded (measured: 1.0e-9 against 6.7e-11), reaches the bound first."""
    x = np.array(grid) / 64
    span = x.max() - x.min()
    shift = round(reach * span * 1e4 ** (1 / degree) * 64) / 64
    y = np.cos(x) + np.array(noise[: len(x)])
    base = fit_polynomial(x, y, degree).coefficients.tolist()
    shifted = fit_polynomial(x + shift, y, degree).coefficients.tolist()
    scaled = fit_polynomial(x, y * scale, degree).coefficients.tolist()
    points = [Fraction(v) for v in x.tolist()]
    expected = exact_predictions(base, points)
    size = max(abs(v) for v in expected)
    moved = exact_predictions(shifted, [p + Fraction(shift) for p in points])
    assert max(abs(a - b) for a, b in zip(moved, expected, strict=True)) <= 1e-9 * size
    stretched = exact_predictions(scaled, points)
    assert max(abs(a / Fraction(scale) - b)
               for a, b in zip(stretched, expected, strict=True)) <= 1e-9 * size
