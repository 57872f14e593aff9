"""Batched numpy: W (K, p) in NumPy, R = W·Pᵀ − y, W ← W − 2·lr·R·P for all members at once."""

from __future__ import annotations

import numpy as np

from polyfit.models import FitRequest
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import Fit, Problem, named, polynomial_formula


def fit_batch(problem: Problem, requests: list[FitRequest],
              report: BatchReport) -> list[Fit | None]:
    """Fit all members together; a stopped member's entry is None (its reason is in report)."""
    base = requests[0]
    powers, y = problem.weighted(base.degree)  # each row over its σ
    powers_t = np.ascontiguousarray(powers.T)
    w = np.stack([np.random.default_rng(r.seed).standard_normal(base.degree + 1)
                  for r in requests]).astype(powers.dtype)
    initial = w.copy()
    scale = np.array([[2.0 * r.learning_rate] for r in requests])

    with np.errstate(over="ignore", invalid="ignore"):  # divergence is found from the losses
        for t in range(base.steps):
            residual = w @ powers_t - y
            if report.due(t):
                report.record(t, np.einsum("kn,kn->k", residual, residual).tolist())
            if report.all_stopped:
                break
            w -= scale * (residual @ powers)
            if report.changed:  # after the step: a diverged row's NaN times 0 is still NaN
                rows = report.take_stopped()
                w[rows], scale[rows] = 0, 0
        residual = w @ powers_t - y
        final_losses = np.einsum("kn,kn->k", residual, residual)

    fits: list[Fit | None] = []
    for row in range(len(requests)):
        if row in report.stopped:
            fits.append(None)
            continue
        coefficients = named(w[row])
        fits.append(Fit(coefficients, named(initial[row]), polynomial_formula(coefficients),
                        float(final_losses[row]), base.steps))
    return fits
