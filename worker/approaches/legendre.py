"""legendre: y = a + b·Pₙ(c + d·x), Pₙ a custom autograd Function with its own backward."""

import numpy as np
import torch
from numpy.polynomial import legendre as npleg

from models import FitRequest
from worker.fit import Fit, Problem, Report, named

INITIAL = (0.0, -1.0, 0.0, 0.3)  # a, b, c, d: near the answer, or it will not converge


def _power_coefficients(degree: int) -> list[float]:
    """Pₙ in the power basis, highest power first (P3: 2.5, 0, -1.5, 0)."""
    return list(npleg.leg2poly([0] * degree + [1])[::-1])


def _horner(coefficients: list[float], t: torch.Tensor) -> torch.Tensor:
    value = torch.full_like(t, coefficients[0])
    for c in coefficients[1:]:
        value = value * t + c
    return value


class LegendrePolynomial(torch.autograd.Function):
    """Pₙ(t) forward, Pₙ'(t) backward."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, degree: int) -> torch.Tensor:
        ctx.save_for_backward(t)
        ctx.degree = degree
        return _horner(_power_coefficients(degree), t)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (t,) = ctx.saved_tensors
        coefficients = _power_coefficients(ctx.degree)
        degree = ctx.degree
        derivative = [c * (degree - i) for i, c in enumerate(coefficients[:-1])]
        return grad_output * _horner(derivative, t), None


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    x, y, degree = problem.x, problem.y, request.degree
    a, b, c, d = (torch.tensor(v, dtype=x.dtype, device=x.device, requires_grad=True)
                  for v in INITIAL)
    params = [a, b, c, d]
    legendre = LegendrePolynomial.apply

    for t in range(request.steps):
        loss = (a + b * legendre(c + d * x, degree) - y).pow(2).sum()
        if report.due(t):
            report(t, loss)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.sub_(p.grad, alpha=request.learning_rate)
                p.grad = None

    with torch.no_grad():
        final_loss = (a + b * legendre(c + d * x, degree) - y).pow(2).sum().item()
    coefficients = named(np.array([p.item() for p in params]))
    v = coefficients
    formula = f"y = {v['a']} + {v['b']} * P{degree}({v['c']} + {v['d']} x)"
    return Fit(coefficients, named(INITIAL), formula, final_loss, request.steps)
