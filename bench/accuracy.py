"""Correct significant digits of polynomial least squares on hard problems: polyfit's exact
approach beside numpy's ``Polynomial.fit`` (x mapped onto [-1, 1], converted to the power
basis) and raw ``lstsq`` on [1, x, …, xⁿ], against answers computed exactly in rational
arithmetic (bench/hard_problems.py).

Digits are the log relative error, −log10|c − e|/|e| (15.9 where equal), the worst over the
coefficients and over the standard errors; then the residual standard deviation and R².
numpy's ``Polynomial.fit`` reports no standard errors; lstsq's are σ²(JᵀJ)⁻¹ with an explicit
inverse, as a user would write them. The last columns time one fit (best of ``--rounds``),
polyfit's against ``Polynomial.fit`` timed in the same run.

Run: ``.venv/bin/python bench/accuracy.py [--rounds N]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on the path, where bench/queue.py would shadow the
# standard library's queue (which torch imports); the project root takes its place.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402

from bench.hard_problems import Certified, HardProblem, certify, digits, hard_problems  # noqa: E402
from polyfit.models.least_squares import fit_polynomial  # noqa: E402
from polyfit.models.statistics import fit_statistics  # noqa: E402
from polyfit.worker.engine.fit import named  # noqa: E402


def worst(computed: list[float] | None, exact: list[float]) -> str:
    if computed is None:
        return "–"
    return f"{min(digits(c, e) for c, e in zip(computed, exact, strict=True)):.1f}"


def summary(problem: HardProblem, answer: Certified, coefficients: list[float],
            errors: list[float] | None, sse: float, r_squared: float) -> list[str]:
    n, p = len(problem.x), problem.degree + 1
    return [worst(coefficients, answer.coefficients), worst(errors, answer.standard_errors),
            f"{digits(math.sqrt(sse / (n - p)), answer.residual_sd):.1f}",
            f"{digits(r_squared, answer.r_squared):.1f}"]


def polyfit_row(problem: HardProblem, answer: Certified) -> list[str]:
    optimum = fit_polynomial(problem.x, problem.y, problem.degree, problem.sigma)
    stats = fit_statistics("exact", problem.degree, problem.x, problem.y,
                           named(optimum.coefficients), problem.sigma)
    errors = list(stats.standard_errors.values()) if stats.standard_errors else None
    return summary(problem, answer, optimum.coefficients.tolist(), errors, stats.sse,
                   stats.r_squared)


def weighted(problem: HardProblem) -> tuple[np.ndarray, np.ndarray]:
    """The rows of [1, x, …, xⁿ] and y divided by σ, for the raw solve."""
    scale = 1 / problem.sigma if problem.sigma is not None else np.ones_like(problem.x)
    return np.vander(problem.x, problem.degree + 1, increasing=True) * scale[:, None], (
        problem.y * scale)


def total(problem: HardProblem) -> float:
    weights = 1 / problem.sigma**2 if problem.sigma is not None else np.ones_like(problem.y)
    return float((weights * (problem.y - np.average(problem.y, weights=weights)) ** 2).sum())


def numpy_fit(problem: HardProblem) -> tuple[np.polynomial.Polynomial, list, np.ndarray]:
    """numpy's fit in the mapped domain and its power-basis coefficients, as a user gets them."""
    w = None if problem.sigma is None else 1 / problem.sigma
    fitted, details = np.polynomial.Polynomial.fit(problem.x, problem.y, problem.degree, w=w,
                                                   full=True)
    return fitted, details, fitted.convert().coef


def numpy_row(problem: HardProblem, answer: Certified) -> list[str]:
    fitted, (chi_square, *_), coefficients = numpy_fit(problem)
    residual = problem.y - fitted(problem.x)
    return summary(problem, answer, coefficients.tolist(), None, float(residual @ residual),
                   1 - float(chi_square[0]) / total(problem) if len(chi_square) else 1.0)


def lstsq_row(problem: HardProblem, answer: Certified) -> list[str]:
    design, target = weighted(problem)
    coefficients, chi_square, *_ = np.linalg.lstsq(design, target, rcond=None)
    chi_square = float(chi_square[0]) if len(chi_square) else 0.0
    n, p = design.shape
    errors = np.sqrt(np.abs(np.diag(np.linalg.inv(design.T @ design))) * chi_square / (n - p))
    residual = problem.y - np.vander(problem.x, p, increasing=True) @ coefficients
    return summary(problem, answer, coefficients.tolist(), errors.tolist(),
                   float(residual @ residual), 1 - chi_square / total(problem))


def best_time(fit: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fit()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    arguments = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}; digits "
          "(worst coefficient / worst standard error / residual sd / R²)")
    print(f"{'problem':<14} {'polyfit':<22} {'numpy Polynomial.fit':<22} {'raw lstsq':<22} "
          f"{'polyfit ms':>10} {'numpy ms':>9} {'ratio':>6}")
    for problem in hard_problems():
        answer = certify(problem)
        cells = [" ".join(f"{c:>4}" for c in row(problem, answer))
                 for row in (polyfit_row, numpy_row, lstsq_row)]
        ours = best_time(partial(fit_polynomial, problem.x, problem.y, problem.degree,
                                 problem.sigma), arguments.rounds)
        theirs = best_time(partial(numpy_fit, problem), arguments.rounds)
        print(f"{problem.name:<14} {cells[0]:<22} {cells[1]:<22} {cells[2]:<22} "
              f"{ours * 1e3:>10.3f} {theirs * 1e3:>9.3f} {ours / theirs:>6.2f}")
    print("goals: ≥ 7 digits in every coefficient, ≥ 5 in every standard error, ≥ 6 in the "
          "residual sd and R²")


if __name__ == "__main__":
    main()
