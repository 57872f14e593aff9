"""How good a fit is and how certain its coefficients are: goodness of fit, information
criteria, the covariance of the coefficients and their confidence intervals, and whether a
descent reached the optimum. NumPy only, in float64, at the returned coefficients; the client
uses it too (confidence bands in plots).

With n points, p coefficients, SSE the sum of squared residuals and SST the total sum of
squares about the mean of y:

- residual variance σ² = SSE / (n − p); R² = 1 − SSE/SST; adjusted R² = 1 − (1 − R²)(n − 1)/(n − p);
- AIC = n·ln(SSE/n) + 2p and BIC = n·ln(SSE/n) + p·ln(n) (lmfit's least-squares forms);
- covariance = σ²(JᵀJ)⁻¹, J the Jacobian of the predictions with respect to the coefficients,
  from J's singular value decomposition (never an explicit inverse of JᵀJ); none when J is
  rank-deficient, i.e. when the data cannot tell some coefficients apart;
- 95 % confidence intervals from Student's t with n − p degrees of freedom.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.polynomial import legendre as numpy_legendre
from pydantic import BaseModel

CONFIDENCE = 0.95
# A descent is converged when its loss is within this fraction of the least-squares optimum.
CONVERGED_GAP = 1e-3
NO_FIXED_MODEL = ("dynamic's model changes every step (x⁴ and x⁵ drawn at random), so its "
                  "coefficients estimate no fixed model: no covariance or intervals")


class FitStatistics(BaseModel):
    """The statistics of one result; a field is None where it has no meaning, and ``notes``
    say why."""

    n_points: int
    n_coefficients: int
    sse: float
    sst: float
    residual_variance: float | None
    r_squared: float | None
    adjusted_r_squared: float | None
    aic: float | None
    bic: float | None
    covariance: list[list[float]] | None
    standard_errors: dict[str, float] | None
    confidence_intervals: dict[str, tuple[float, float]] | None
    gap_to_optimum: float | None
    converged: bool | None
    notes: list[str] = []


def design(approach: str, x: np.ndarray, coefficients: list[float],
           degree: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's predictions at ``x`` and its Jacobian (n × p) with respect to the
    coefficients, at ``coefficients``."""
    if approach == "legendre":  # a + b·Pₙ(c + d·x)
        a, b, c, d = coefficients
        t = c + d * x
        unit = np.zeros(degree + 1)
        unit[degree] = 1.0
        p_n = numpy_legendre.legval(t, unit)
        slope = b * numpy_legendre.legval(t, numpy_legendre.legder(unit))
        jacobian = np.stack([np.ones_like(x), p_n, slope, slope * x], axis=1)
        return a + b * p_n, jacobian
    if approach == "dynamic":  # the cubic plus e·(x⁴ + x⁵), as its final loss is computed
        powers = np.vander(x, 6, increasing=True)
        jacobian = np.column_stack([powers[:, :4], powers[:, 4] + powers[:, 5]])
        return jacobian @ np.asarray(coefficients), jacobian
    jacobian = np.vander(x, degree + 1, increasing=True)
    return jacobian @ np.asarray(coefficients), jacobian


def fit_statistics(approach: str, degree: int, x: np.ndarray, y: np.ndarray,
                   coefficients: dict[str, float], optimum_loss: float | None) -> FitStatistics:
    """The statistics of ``coefficients`` (named a, b, …, in order) fitted to (x, y)."""
    return FittedPoints(approach, degree, x, y).statistics([coefficients], optimum_loss)[0]


class FittedPoints:
    """The points fits of one model are made on, with what all their statistics share: SST
    and, for a model linear in its coefficients, J and (JᵀJ)⁻¹, decomposed once (a sweep's
    members; every job on the same sampling, as ``worker.engine.run`` caches it)."""

    def __init__(self, approach: str, degree: int, x: np.ndarray, y: np.ndarray) -> None:
        self.approach, self.degree = approach, degree
        self.x, self.y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.sst = float(((self.y - self.y.mean()) ** 2).sum())
        self.jacobian = self.inverse = None
        if approach != "legendre":  # legendre's J depends on the coefficients
            width = 5 if approach == "dynamic" else degree + 1
            self.jacobian = design(approach, self.x, [0.0] * width, degree)[1]
            self.inverse = None if approach == "dynamic" else normal_inverse(self.jacobian)

    def statistics(self, members: list[dict[str, float]],
                   optimum_loss: float | None) -> list[FitStatistics]:
        """``fit_statistics`` of each member's coefficients."""
        if self.jacobian is None:
            found = []
            for coefficients in members:
                predictions, jacobian = design(self.approach, self.x,
                                               list(coefficients.values()), self.degree)
                sse = float((predictions - self.y) @ (predictions - self.y))
                found.append(_summary(self.approach, coefficients, jacobian.shape, sse,
                                      self.sst, normal_inverse(jacobian), optimum_loss))
            return found
        values = np.array([list(coefficients.values()) for coefficients in members])
        sse = np.concatenate([((rows @ self.jacobian.T - self.y) ** 2).sum(axis=1)
                              for rows in np.array_split(values, max(1, len(values) // 256))])
        return [_summary(self.approach, coefficients, self.jacobian.shape, float(error),
                         self.sst, self.inverse, optimum_loss)
                for coefficients, error in zip(members, sse, strict=True)]


def _summary(approach: str, coefficients: dict[str, float], shape: tuple[int, int], sse: float,
             sst: float, inverse: np.ndarray | None,
             optimum_loss: float | None) -> FitStatistics:
    n, p = shape
    notes: list[str] = []
    dof = n - p
    variance = sse / dof if dof > 0 else None
    if dof <= 0:
        notes.append(f"{n} points for {p} coefficients: no residual degrees of freedom")
    r_squared = 1 - sse / sst if sst > 0 else None
    adjusted = (1 - (1 - r_squared) * (n - 1) / dof
                if r_squared is not None and dof > 0 else None)
    aic = bic = None
    if sse > 0:
        aic = n * math.log(sse / n) + 2 * p
        bic = n * math.log(sse / n) + p * math.log(n)
    else:
        notes.append("the fit is exact (SSE = 0): AIC and BIC are unbounded")

    covariance = errors = intervals = None
    if approach == "dynamic":
        notes.append(NO_FIXED_MODEL)
    elif variance is not None and inverse is None:
        notes.append("JᵀJ is singular: the data cannot tell every coefficient apart "
                     "(fewer distinct x than coefficients, or x too narrow for the degree)")
    elif variance is not None:
        matrix = variance * inverse
        covariance = matrix.tolist()
        se = np.sqrt(np.clip(np.diag(matrix), 0, None))
        half = t_quantile((1 + CONFIDENCE) / 2, dof) * se
        values = np.array(list(coefficients.values()))
        errors = dict(zip(coefficients, se.tolist(), strict=True))
        intervals = {name: (low, high) for name, low, high
                     in zip(coefficients, (values - half).tolist(), (values + half).tolist(),
                            strict=True)}

    gap = converged = None
    if optimum_loss is not None and optimum_loss > 0:
        gap = (sse - optimum_loss) / optimum_loss
        converged = gap <= CONVERGED_GAP
    elif approach == "legendre":
        notes.append("legendre has no closed-form optimum: convergence is not judged")
    return FitStatistics(
        n_points=n, n_coefficients=p, sse=sse, sst=sst, residual_variance=variance,
        r_squared=r_squared, adjusted_r_squared=adjusted, aic=aic, bic=bic,
        covariance=covariance, standard_errors=errors, confidence_intervals=intervals,
        gap_to_optimum=gap, converged=converged, notes=notes)


def normal_inverse(jacobian: np.ndarray) -> np.ndarray | None:
    """(JᵀJ)⁻¹ from J's singular values, or None when J is rank-deficient (lstsq's
    tolerance: singular values below max(n, p)·ε·s_max count as zero)."""
    _, s, vt = np.linalg.svd(jacobian, full_matrices=False)
    if s[-1] <= max(jacobian.shape) * np.finfo(np.float64).eps * s[0]:
        return None
    scaled = vt.T / s
    return scaled @ scaled.T


def mean_prediction_band(approach: str, degree: int, x: np.ndarray,
                         coefficients: dict[str, float], covariance: list[list[float]],
                         n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """The model at ``x`` and the half-width of the 95 % confidence band of its mean
    prediction: t·√(jᵀ·Cov·j), j the Jacobian row at each x."""
    predictions, jacobian = design(approach, np.asarray(x, np.float64),
                                   list(coefficients.values()), degree)
    spread = np.einsum("ij,jk,ik->i", jacobian, np.asarray(covariance), jacobian)
    dof = n_points - len(coefficients)
    return predictions, t_quantile((1 + CONFIDENCE) / 2, dof) * np.sqrt(np.clip(spread, 0, None))


@lru_cache(maxsize=64)
def t_quantile(probability: float, dof: int) -> float:
    """Student's t quantile with ``dof`` degrees of freedom, by bisection on its CDF."""
    low, high = 0.0, 1.0
    while t_cdf(high, dof) < probability:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, dof) < probability:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * high:
            break
    return (low + high) / 2


def t_cdf(t: float, dof: int) -> float:
    """P(T ≤ t) for t ≥ 0: 1 − I_x(ν/2, 1/2)/2 with x = ν/(ν + t²)."""
    return 1 - 0.5 * incomplete_beta(dof / 2, 0.5, dof / (dof + t * t))


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction
    (modified Lentz), on the side where it converges fast."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1 - incomplete_beta(b, a, 1 - x)
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return math.exp(log_front) * fraction / a
