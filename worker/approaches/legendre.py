"""legendre: y = a + b·Pₙ(c + d·x), Pₙ a custom autograd Function with its own backward."""

from functools import cache

import torch
from numpy.polynomial import legendre as npleg

from models import FitRequest
from worker.fit import Fit, Problem, Report, named, sse

INITIAL = (0.0, -1.0, 0.0, 0.3)  # a, b, c, d: near the answer, or it will not converge


@cache
def _power_coefficients(degree: int) -> tuple[float, ...]:
    """Pₙ in the power basis, highest power first (P3: 2.5, 0, -1.5, 0)."""
    return tuple(float(c) for c in npleg.leg2poly([0] * degree + [1])[::-1])


@cache
def _derivative_coefficients(degree: int) -> tuple[float, ...]:
    """Pₙ' in the power basis, highest power first (P3': 7.5, 0, -1.5)."""
    return tuple(c * (degree - i) for i, c in enumerate(_power_coefficients(degree)[:-1]))


def _horner(coefficients: tuple[float, ...], t: torch.Tensor) -> torch.Tensor:
    value = t * coefficients[0]
    for c in coefficients[1:-1]:
        value = (value + c) * t if c else value * t
    return value + coefficients[-1] if coefficients[-1] else value


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
        return grad_output * _horner(_derivative_coefficients(ctx.degree), t), None


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    x, y, degree = problem.x, problem.y, request.degree
    params = torch.tensor(INITIAL, dtype=x.dtype, device=x.device, requires_grad=True)
    legendre = LegendrePolynomial.apply

    def loss_at(a, b, c, d):  # Σ(a + b·Pₙ(c + d·x) − y)², with fused multiply-adds
        y_pred = torch.addcmul(a, b, legendre(torch.addcmul(c, d, x), degree))
        return sse(y_pred, y)

    for t in range(request.steps):
        loss = loss_at(*params.unbind())
        if report.due(t):
            report(t, loss)
        loss.backward()
        with torch.no_grad():
            params.sub_(params.grad, alpha=request.learning_rate)
            params.grad = None

    with torch.no_grad():
        final_loss = loss_at(*params.unbind()).item()
    coefficients = named(params.detach().cpu())
    v = coefficients
    formula = f"y = {v['a']} + {v['b']} * P{degree}({v['c']} + {v['d']} x)"
    return Fit(coefficients, named(INITIAL), formula, final_loss, request.steps)
