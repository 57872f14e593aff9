"""Linear least squares to certify: the one solver behind ``exact``, the optimum that descents
are judged against and every covariance. NumPy, in float64 whatever the request's dtype.

A polynomial of degree n is fitted to points (x, y) with standard deviations σ (1 without
weights) by minimising χ² = Σ((y − Σₖ wₖ xᵏ)/σ)². The power-basis design [1, x, …, xⁿ] is
what users read but a poor thing to solve with: on x in [-9, -3] at degree 10 its condition
number passes 1e15 and ``lstsq`` on it keeps no correct digit. So, as numpy.polynomial fits
in a mapped domain and converts for the user:

1. x is mapped affinely onto t ∈ [-1, 1] and the design is built from Legendre polynomials
   Pₖ(t), each row divided by its σ and each column scaled to unit norm: B = QR (Householder).
2. Rank: the data cannot tell every coefficient apart when B's singular values span more
   than ``1/(RANK_TOLERANCE·max(rows, n + 1))`` (lstsq's rule, on this well-conditioned B);
   the reason given is the number of distinct x when that is below n + 1, else that the x
   are too close together (or weighted too unevenly) for the degree.
3. Legendre coefficients c = R⁻¹Qᵀ(y/σ), converted to the power basis in x: w = M·c.
4. Refinement in the original basis: the residual r = y − Σ wₖ xᵏ is evaluated in twice the
   working precision (compensated Horner), its own least-squares correction solved with the
   same QR and added, w ← w + M·R⁻¹Qᵀ(r/σ), until the correction stops shrinking. The mapping
   and the conversion round; the refined w is the power-basis optimum of the data as given.
5. (JᵀWJ)⁻¹ in the power basis, J = [1, x, …, xⁿ] and W = diag(1/σ²), from the same
   factorization: G·Gᵀ with G = M·D⁻¹·R⁻¹ (D the column norms), never inverting JᵀWJ.

General Jacobians (a model not linear in its coefficients, at its fitted values) get their
(JᵀWJ)⁻¹ from ``normal_inverse``: the columns scaled to unit norm first, the same rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
from numpy.polynomial import Legendre
from numpy.polynomial import legendre as numpy_legendre

# Singular values below RANK_TOLERANCE · max(n, p) · s_max count as zero (``lstsq``'s rcond),
# taken on the column-scaled design: a well-posed problem's scaled design is far above it.
RANK_TOLERANCE = np.finfo(np.float64).eps
# Refinement ends when a correction no longer shrinks to below half the previous one; a
# well-posed problem needs two or three.
MAX_REFINEMENTS = 8


@dataclass(frozen=True)
class PolynomialLeastSquares:
    """The weighted least-squares polynomial of (x, y, σ): power-basis ``coefficients``
    (w₀, w₁, …), the ``residuals`` y − f there and ``chi_square`` = Σ((y − f)/σ)² (the sum
    of squared residuals without σ), ``normal_inverse`` = (JᵀWJ)⁻¹ (None when the data cannot
    tell every coefficient apart, and ``singular`` then says why)."""

    coefficients: np.ndarray
    residuals: np.ndarray
    chi_square: float
    normal_inverse: np.ndarray | None
    singular: str | None


def fit_polynomial(x: np.ndarray, y: np.ndarray, degree: int,
                   sigma: np.ndarray | None = None) -> PolynomialLeastSquares:
    """The least-squares polynomial of ``degree`` through (x, y), weighted by 1/σ²."""
    return MappedDesign(x, degree, sigma).fit(y)


class MappedDesign:
    """The points' x (and σ) prepared once for any y: the mapped, weighted, column-scaled
    Legendre design and its QR, the conversion to the power basis, the rank decision."""

    def __init__(self, x: np.ndarray, degree: int, sigma: np.ndarray | None = None) -> None:
        self.x = np.asarray(x, np.float64)
        self.degree = degree
        self.scale = np.ones_like(self.x) if sigma is None else 1 / np.asarray(sigma, np.float64)
        offset, slope = Legendre([1], domain=[self.x.min(), self.x.max()]).mapparms()
        design = numpy_legendre.legvander(offset + slope * self.x, degree) * self.scale[:, None]
        self.norms = np.linalg.norm(design, axis=0)
        self.q, self.r = np.linalg.qr(design / self.norms)
        # column k: the power-basis coefficients in x of the k-th scaled column's polynomial
        self.to_power = substitution(offset, slope, degree) @ legendre_powers(degree) / self.norms
        self.singular = self._why_singular()

    def _why_singular(self) -> str | None:
        n, p = len(self.x), self.degree + 1
        distinct = len(np.unique(self.x))
        if distinct < p:
            return (f"{distinct} distinct x for {p} coefficients: the data cannot tell every "
                    "coefficient apart")
        values = np.linalg.svd(self.r, compute_uv=False)
        if values[-1] > RANK_TOLERANCE * max(n, p) * values[0]:
            return None
        return (f"the x are too close together for degree {self.degree}: mapped onto "
                f"[-1, 1] (and weighted), the design's condition number is "
                f"{values[0] / values[-1]:.2g}, so the data cannot tell every coefficient apart")

    def _solve(self, residual: np.ndarray) -> np.ndarray:
        """The power-basis least-squares solution for the right-hand side ``residual``."""
        rhs = self.q.T @ (residual * self.scale)
        if self.singular is None:
            return self.to_power @ np.linalg.solve(self.r, rhs)
        return self.to_power @ np.linalg.lstsq(self.r, rhs, rcond=None)[0]

    def fit(self, y: np.ndarray) -> PolynomialLeastSquares:
        y = np.asarray(y, np.float64)
        w = self._solve(y)
        residual = residuals(self.x, y, w)
        last = np.inf
        for _ in range(MAX_REFINEMENTS):
            correction = self._solve(residual)
            size = np.abs(correction).max()
            if not size < last / 2:
                break
            w = w + correction
            residual, last = residuals(self.x, y, w), size
            if size <= np.finfo(np.float64).eps * np.abs(w).max():
                break
        weighted = residual * self.scale
        return PolynomialLeastSquares(w, residual, float(weighted @ weighted),
                                      self.normal_inverse, self.singular)

    @cached_property
    def normal_inverse(self) -> np.ndarray | None:
        if self.singular is not None:
            return None
        g = np.linalg.solve(self.r.T, self.to_power.T).T  # M·D⁻¹·R⁻¹
        return g @ g.T


@cache
def legendre_powers(degree: int) -> np.ndarray:
    """Column k: Pₖ(t)'s coefficients of 1, t, …, tⁿ."""
    return np.stack([np.pad(numpy_legendre.leg2poly([0] * k + [1]), (0, degree - k))
                     for k in range(degree + 1)], axis=1)


def substitution(offset: float, slope: float, degree: int) -> np.ndarray:
    """S with tʲ = Σᵢ S[i, j]·xⁱ for t = offset + slope·x: S[i, j] = C(j, i)·offsetʲ⁻ⁱ·slopeⁱ."""
    return np.array([[math.comb(j, i) * offset ** (j - i) * slope**i if i <= j else 0.0
                      for j in range(degree + 1)] for i in range(degree + 1)])


def residuals(x: np.ndarray, y: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """y − Σ wₖ xᵏ, as if evaluated in twice float64's precision: Horner's rule with each
    product's and sum's rounding error carried (Graillat, Langlois and Louvet's compensated
    Horner), then subtracted from y. Plain Horner loses the digits that the terms wₖxᵏ
    cancel: seven of them on x in [-9, -3] at degree 10."""
    x = np.asarray(x, np.float64)
    value = np.full_like(x, coefficients[-1])
    error = np.zeros_like(x)
    for coefficient in coefficients[-2::-1]:
        product, product_error = _two_product(value, x)
        value, sum_error = _two_sum(product, coefficient)
        error = error * x + (product_error + sum_error)
    difference, difference_error = _two_sum(np.asarray(y, np.float64), -value)
    return difference + (difference_error - error)


def _two_sum(a: np.ndarray, b: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """s = fl(a + b) and its rounding error e, a + b = s + e exactly (Knuth)."""
    s = a + b
    virtual = s - a
    return s, (a - (s - virtual)) + (b - virtual)


_SPLITTER = 2.0**27 + 1


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a = high + low, each with at most 26 significant bits (Veltkamp)."""
    c = _SPLITTER * a
    high = c - (c - a)
    return high, a - high


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p = fl(a·b) and its rounding error e, a·b = p + e exactly (Dekker; NumPy has no FMA)."""
    p = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    return p, a_low * b_low - (((p - a_high * b_high) - a_low * b_high) - a_high * b_low)


def normal_inverse(jacobian: np.ndarray) -> np.ndarray | None:
    """(JᵀJ)⁻¹ of a Jacobian whose rows are already divided by their σ, from the SVD of J with
    its columns scaled to unit norm; None when that scaled J is rank-deficient
    (``RANK_TOLERANCE``)."""
    norms = np.linalg.norm(jacobian, axis=0)
    if not norms.all():
        return None
    _, s, vt = np.linalg.svd(jacobian / norms, full_matrices=False)
    if s[-1] <= RANK_TOLERANCE * max(jacobian.shape) * s[0]:
        return None
    scaled = vt.T / s / norms[:, None]
    return scaled @ scaled.T
