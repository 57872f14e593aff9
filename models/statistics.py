"""How good a fit is and how certain its coefficients are: goodness of fit, information
criteria, the covariance of the coefficients and their confidence intervals, and whether a
descent reached the optimum. NumPy only, in float64, at the returned coefficients; the client
uses it too (confidence bands in plots).

With n points, p coefficients, residuals r = y − f, standard deviations σ (1 for points
without them) and weights 1/σ²:

- SSE = Σr² and SST = Σ(y − ȳ)²; χ² = Σ(r/σ)² (SSE without σ) and the reduced χ²/(n − p);
- residual variance SSE/(n − p); R² = 1 − χ²/Σ((y − ȳ_w)/σ)², ȳ_w the weighted mean (1 −
  SSE/SST without σ); adjusted R² = 1 − (1 − R²)(n − 1)/(n − p);
- AIC = n·ln(χ²/n) + 2p and BIC = n·ln(χ²/n) + p·ln(n) (lmfit's least-squares forms);
- covariance = s·(JᵀWJ)⁻¹, J the Jacobian of the predictions with respect to the
  coefficients, from polyfit.models.least_squares (never an explicit inverse of JᵀWJ); s is
  the reduced χ² (σ taken as relative weights, curve_fit's default) or 1 with
  ``absolute_sigma``; none when the data cannot tell some coefficients apart;
- 95 % confidence intervals from Student's t with n − p degrees of freedom.

For a polynomial the residuals at any coefficients w are the optimum's, computed in twice
float64's precision, less J·(w − w*): accurate where evaluating the polynomial is not.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.polynomial import legendre as numpy_legendre
from pydantic import BaseModel

from polyfit.models.least_squares import MappedDesign, normal_inverse

CONFIDENCE = 0.95
# A descent is converged when its loss is within this fraction of the least-squares optimum.
CONVERGED_GAP = 1e-3
NO_FIXED_MODEL = ("dynamic's model changes every step (x⁴ and x⁵ drawn at random), so its "
                  "coefficients estimate no fixed model: no covariance or intervals")
SINGULAR = "JᵀWJ is singular at these coefficients: the data cannot tell every coefficient apart"


class FitStatistics(BaseModel):
    """The statistics of one result; a field is None where it has no meaning, and ``notes``
    say why."""

    n_points: int
    n_coefficients: int
    sse: float
    sst: float
    weighted: bool = False  # the points had σ (False in records written before weights)
    chi_square: float | None = None
    reduced_chi_square: float | None = None
    absolute_sigma: bool = False
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
                   coefficients: dict[str, float], sigma: np.ndarray | None = None,
                   absolute_sigma: bool = False) -> FitStatistics:
    """The statistics of ``coefficients`` (named a, b, …, in order) fitted to (x, y, σ)."""
    return FittedPoints(approach, degree, x, y, sigma, absolute_sigma).statistics(
        [coefficients])[0]


class FittedPoints:
    """The points fits of one model are made on, with what all their statistics share: the
    weighted SST and, for a polynomial, its least-squares optimum (the residuals there and
    (JᵀWJ)⁻¹), solved once (a sweep's members; every job on the same sampling, as
    ``worker.engine.run`` caches it)."""

    def __init__(self, approach: str, degree: int, x: np.ndarray, y: np.ndarray,
                 sigma: np.ndarray | None = None, absolute_sigma: bool = False) -> None:
        self.approach, self.degree, self.absolute_sigma = approach, degree, absolute_sigma
        self.x, self.y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.scale = None if sigma is None else 1 / np.asarray(sigma, np.float64)
        weights = np.ones_like(self.y) if self.scale is None else self.scale**2
        self.sst = float(((self.y - self.y.mean()) ** 2).sum())
        self.weighted_sst = float((weights * (self.y - np.average(self.y, weights=weights))
                                   ** 2).sum())
        self.optimum = None
        if approach not in ("legendre", "dynamic"):  # a polynomial in x
            self.optimum = MappedDesign(self.x, degree, sigma).fit(self.y)
            self.powers = np.vander(self.x, degree + 1, increasing=True)

    @property
    def optimum_loss(self) -> float | None:
        """The least χ² (SSE without σ) the model reaches on these points; None for a model
        that is not a polynomial in x."""
        return None if self.optimum is None else self.optimum.chi_square

    def statistics(self, members: list[dict[str, float]]) -> list[FitStatistics]:
        """The statistics of each member's coefficients."""
        if self.optimum is None:
            found = []
            for coefficients in members:
                predictions, jacobian = design(self.approach, self.x,
                                               list(coefficients.values()), self.degree)
                weighted = jacobian if self.scale is None else jacobian * self.scale[:, None]
                inverse = None if self.approach == "dynamic" else normal_inverse(weighted)
                sse, chi_square = self._sums(self.y - predictions)
                found.append(self._summary(coefficients, jacobian.shape[1], float(sse),
                                           float(chi_square), inverse, SINGULAR))
            return found
        values = np.array([list(coefficients.values()) for coefficients in members])
        found = []
        for block in np.array_split(np.arange(len(members)), max(1, len(members) // 256)):
            offsets = (values[block] - self.optimum.coefficients) @ self.powers.T
            sums = self._sums(self.optimum.residuals - offsets)
            for row, sse, chi_square in zip(block, *sums, strict=True):
                found.append(self._summary(members[row], self.degree + 1, float(sse),
                                           float(chi_square), self.optimum.normal_inverse,
                                           self.optimum.singular))
        return found

    def _sums(self, residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Σr² and Σ(r/σ)² over the last axis of ``residuals``."""
        sse = (residuals**2).sum(axis=-1)
        if self.scale is None:
            return sse, sse
        return sse, ((residuals * self.scale) ** 2).sum(axis=-1)

    def _summary(self, coefficients: dict[str, float], p: int, sse: float, chi_square: float,
                 inverse: np.ndarray | None, singular: str | None) -> FitStatistics:
        n = len(self.x)
        notes: list[str] = []
        dof = n - p
        reduced = chi_square / dof if dof > 0 else None
        if dof <= 0:
            notes.append(f"{n} points for {p} coefficients: no residual degrees of freedom")
        r_squared = 1 - chi_square / self.weighted_sst if self.weighted_sst > 0 else None
        adjusted = (1 - (1 - r_squared) * (n - 1) / dof
                    if r_squared is not None and dof > 0 else None)
        aic = bic = None
        if chi_square > 0:
            aic = n * math.log(chi_square / n) + 2 * p
            bic = n * math.log(chi_square / n) + p * math.log(n)
        else:
            notes.append("the fit is exact (SSE = 0): AIC and BIC are unbounded")

        covariance = errors = intervals = None
        if self.approach == "dynamic":
            notes.append(NO_FIXED_MODEL)
        elif inverse is None:
            notes.append(singular)
        elif reduced is not None:
            matrix = inverse if self.absolute_sigma else reduced * inverse
            covariance = matrix.tolist()
            se = np.sqrt(np.clip(np.diag(matrix), 0, None))
            half = t_quantile((1 + CONFIDENCE) / 2, dof) * se
            values = np.array(list(coefficients.values()))
            errors = dict(zip(coefficients, se.tolist(), strict=True))
            intervals = {name: (low, high) for name, low, high
                         in zip(coefficients, (values - half).tolist(),
                                (values + half).tolist(), strict=True)}

        gap = converged = None
        if self.optimum_loss is not None and self.optimum_loss > 0:
            gap = (chi_square - self.optimum_loss) / self.optimum_loss
            converged = gap <= CONVERGED_GAP
        elif self.approach == "legendre":
            notes.append("legendre has no closed-form optimum: convergence is not judged")
        return FitStatistics(
            n_points=n, n_coefficients=p, sse=sse, sst=self.sst,
            weighted=self.scale is not None, chi_square=chi_square,
            reduced_chi_square=reduced, absolute_sigma=self.absolute_sigma,
            residual_variance=sse / dof if dof > 0 else None, r_squared=r_squared,
            adjusted_r_squared=adjusted, aic=aic, bic=bic, covariance=covariance,
            standard_errors=errors, confidence_intervals=intervals, gap_to_optimum=gap,
            converged=converged, notes=notes)


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
