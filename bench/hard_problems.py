"""Polynomial least-squares problems that break a naive solver, and their answers computed
exactly: for tests/test_least_squares.py and bench/accuracy.py.

Each problem is made like one of NIST's StRD linear-regression sets, whose data cannot be
fetched here, at least as hard: x clustered far from 0 at degree 10 (like Filip), x = 0..20
at degree 5 with |y| ~ 1e7 and with exactly polynomial y (like Wampler), x near 1e6 at degree
2 (like Pontius), a line through 36 noisy points (like Norris); and one with weights. The data
are float64 numbers drawn from fixed seeds and rounded to a few decimals, as published data
are.

The answer to each is the exact least-squares solution of those float64 numbers: the normal
equations (JᵀWJ)·w = JᵀW·y solved in rational arithmetic (``fractions``), W = diag(1/σ²);
its residuals, χ², R² and (JᵀWJ)⁻¹ likewise exact, and rounded to float64 only at the end
(standard errors: the exact variance rounded, then its square root).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

# Filip's certified coefficients, as the curve the clustered data scatter about.
FILIP_LIKE = [-1467.49, -2772.18, -2316.37, -1127.97, -354.478, -75.1242, -10.8753,
              -1.06221, -0.0670191, -0.00246781, -4.02963e-05]


@dataclass(frozen=True)
class HardProblem:
    name: str
    description: str
    x: np.ndarray
    y: np.ndarray
    degree: int
    sigma: np.ndarray | None = None

    def data(self) -> dict[str, list[float]]:
        """The points as a request's ``data``."""
        points = {"x": self.x.tolist(), "y": self.y.tolist()}
        if self.sigma is not None:
            points["sigma"] = self.sigma.tolist()
        return points


def hard_problems() -> list[HardProblem]:
    rng = np.random.default_rng(26)
    clustered = np.round(np.sort(-8.8 + 5.7 * rng.beta(3, 3, 82)), 6)
    clustered[[0, -1]] = -8.78, -3.13
    filip_y = np.round(np.polynomial.polynomial.polyval(clustered, FILIP_LIKE)
                       + rng.normal(0, 0.0034, 82), 5)
    counts = np.arange(21.0)
    quintic = np.polynomial.polynomial.polyval(counts, [1.0] * 6)
    loads = np.round(np.linspace(1.5e5, 3e6, 40) + rng.normal(0, 1e3, 40))
    deflection = np.round(6.7e-4 + 7.3e-7 * loads - 3.2e-15 * loads**2
                          + rng.normal(0, 2e-4, 40), 5)
    line_x = np.round(np.sort(rng.uniform(0.2, 900, 36)), 1)
    line_y = np.round(-0.26 + 1.002 * line_x + rng.normal(0, 0.9, 36), 1)
    sigma = np.round(0.002 + 0.004 * rng.uniform(size=82), 4)
    return [
        HardProblem("clustered-10", "degree 10, 82 points with x clustered in [-8.8, -3.1]",
                    clustered, filip_y, 10),
        HardProblem("wide-5", "degree 5, x = 0..20, |y| up to 1.7e7 with noise",
                    counts, np.round(5 * quintic + rng.normal(0, 2e5, 21)), 5),
        HardProblem("wide-5-exact", "degree 5, x = 0..20, y = 1 + x + … + x⁵ exactly",
                    counts, quintic, 5),
        HardProblem("far-2", "degree 2, 40 points with x from 1.5e5 to 3e6", loads, deflection,
                    2),
        HardProblem("line-36", "a straight line through 36 noisy points", line_x, line_y, 1),
        HardProblem("weighted-10", "the clustered degree-10 problem with σ from 0.002 to 0.006",
                    clustered, filip_y, 10, sigma),
    ]


@dataclass(frozen=True)
class Certified:
    """The exact answer, rounded to float64 at the end."""

    coefficients: list[float]
    standard_errors: list[float]  # relative: (JᵀWJ)⁻¹ scaled by the reduced χ²
    residual_sd: float  # √(SSE/(n − p)), SSE without the weights
    chi_square: float
    r_squared: float  # 1 − χ²/Σw(y − ȳ_w)²
    exact_coefficients: list[Fraction]


def certify(problem: HardProblem) -> Certified:
    xs = [Fraction(v) for v in problem.x.tolist()]
    ys = [Fraction(v) for v in problem.y.tolist()]
    weights = ([Fraction(1)] * len(xs) if problem.sigma is None
               else [1 / Fraction(s) ** 2 for s in problem.sigma.tolist()])
    p = problem.degree + 1
    rows = [[x**k for k in range(p)] for x in xs]
    normal = [[sum(w * row[i] * row[j] for w, row in zip(weights, rows, strict=True))
               for j in range(p)] for i in range(p)]
    moments = [sum(w * row[i] * y for w, row, y in zip(weights, rows, ys, strict=True))
               for i in range(p)]
    solution, inverse = _solve_with_inverse(normal, moments)
    residuals = [y - sum(c * v for c, v in zip(solution, row, strict=True))
                 for y, row in zip(ys, rows, strict=True)]
    n = len(xs)
    chi_square = sum(w * r * r for w, r in zip(weights, residuals, strict=True))
    sse = sum(r * r for r in residuals)
    mean = sum(w * y for w, y in zip(weights, ys, strict=True)) / sum(weights)
    total = sum(w * (y - mean) ** 2 for w, y in zip(weights, ys, strict=True))
    reduced = chi_square / (n - p)
    return Certified(
        coefficients=[float(c) for c in solution],
        standard_errors=[math.sqrt(float(reduced * inverse[k][k])) for k in range(p)],
        residual_sd=math.sqrt(float(sse / (n - p))), chi_square=float(chi_square),
        r_squared=float(1 - chi_square / total), exact_coefficients=solution)


def exact_value(coefficients: list[float], x: Fraction) -> Fraction:
    """Σ wₖxᵏ of float64 ``coefficients`` at ``x``, exactly (Horner's rule in rationals)."""
    value = Fraction(0)
    for c in reversed(coefficients):
        value = value * x + Fraction(c)
    return value


def exact_chi_square(problem: HardProblem, coefficients: list[float]) -> Fraction:
    """Σ((y − Σ wₖxᵏ)/σ)² of float64 ``coefficients``, exactly."""
    sigma = [1.0] * len(problem.x) if problem.sigma is None else problem.sigma.tolist()
    return sum((Fraction(y) - exact_value(coefficients, Fraction(x))) ** 2 / Fraction(s) ** 2
               for x, y, s in zip(problem.x.tolist(), problem.y.tolist(), sigma, strict=True))


def _solve_with_inverse(matrix: list[list[Fraction]],
                        rhs: list[Fraction]) -> tuple[list[Fraction], list[list[Fraction]]]:
    """Gauss–Jordan elimination on [A | b | I]: the solution of A·w = b and A⁻¹."""
    size = len(matrix)
    rows = [matrix[i] + [rhs[i]] + [Fraction(int(i == j)) for j in range(size)]
            for i in range(size)]
    for column in range(size):
        pivot = next(r for r in range(column, size) if rows[r][column] != 0)
        rows[column], rows[pivot] = rows[pivot], rows[column]
        lead = rows[column][column]
        rows[column] = [v / lead for v in rows[column]]
        for r in range(size):
            factor = rows[r][column]
            if r != column and factor != 0:
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[column], strict=True)]
    return [row[size] for row in rows], [row[size + 1:] for row in rows]


def digits(computed: float, exact: float) -> float:
    """Correct significant digits, the log relative error −log10|c − e|/|e| (absolute where
    e = 0), capped at 15.9 (float64)."""
    error = abs(computed - exact) / (abs(exact) if exact else 1.0)
    return 15.9 if error == 0 else min(15.9, -math.log10(error))
