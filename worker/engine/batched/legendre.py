"""Batched legendre: a, b, c, d as (K, 1) columns, y = a + b·Pₙ(c + d·x) for all members,
gradients from the approach's own autograd Function on the members' summed loss."""

from __future__ import annotations

import torch

from polyfit.models import FitRequest
from polyfit.worker.engine.approaches.legendre import INITIAL, legendre_polynomial
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import Fit, Problem, named


def fit_batch(problem: Problem, requests: list[FitRequest],
              report: BatchReport) -> list[Fit | None]:
    """Fit all members together; a stopped member's entry is None (its reason is in report)."""
    base, x, y, degree = requests[0], problem.x, problem.y, requests[0].degree
    size = len(requests)
    params = [torch.full((size, 1), v, dtype=x.dtype, device=x.device, requires_grad=True)
              for v in INITIAL]
    a, b, c, d = params
    neg_lr = -torch.tensor([[r.learning_rate] for r in requests], dtype=x.dtype, device=x.device)
    legendre = legendre_polynomial(degree).apply

    def residuals() -> torch.Tensor:
        difference = a + b * legendre(c + d * x) - y
        return difference if problem.scale is None else difference * problem.scale

    for t in range(base.steps):
        residual = residuals()
        if report.due(t):
            report.record(t, residual.detach().pow(2).sum(1))
        if report.all_stopped:
            break
        residual.pow(2).sum().backward()
        with torch.no_grad():
            for p in params:
                p.addcmul_(p.grad, neg_lr)
                p.grad = None
            if report.changed:  # after the step, as the graph needs the values it used
                rows = report.take_stopped()
                for p in params:
                    p[rows] = 0
                neg_lr[rows] = 0

    with torch.no_grad():
        residual = residuals()
        final_losses = residual.pow(2).sum(1).tolist()
    values = torch.cat([p.detach() for p in params], dim=1).tolist()
    fits: list[Fit | None] = []
    for row in range(size):
        if row in report.stopped:
            fits.append(None)
            continue
        v = named(values[row])
        formula = f"y = {v['a']} + {v['b']} * P{degree}({v['c']} + {v['d']} x)"
        fits.append(Fit(v, named(INITIAL), formula, final_losses[row], base.steps))
    return fits
