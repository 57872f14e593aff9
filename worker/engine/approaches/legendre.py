"""legendre: y = a + b·Pₙ(c + d·x), Pₙ a custom autograd Function with its own backward."""

from functools import cache

import torch
from numpy.polynomial import legendre as npleg

from polyfit.models import FitRequest
from polyfit.worker.engine.descent import descend
from polyfit.worker.engine.fit import Fit, Problem, Report, named, sse

INITIAL = (0.0, -1.0, 0.0, 0.3)  # a, b, c, d: near the answer, or it will not converge


def _horner(coefficients: tuple[float, ...], t: torch.Tensor) -> torch.Tensor:
    """Σ cᵢ·tᵏ⁻ⁱ (highest power first), skipping the additions of zero coefficients."""
    if len(coefficients) == 1:  # a constant: P1' = 1
        return torch.full_like(t, coefficients[0])
    value = t * coefficients[0]
    for c in coefficients[1:-1]:
        value = (value + c) * t if c else value * t
    return value + coefficients[-1] if coefficients[-1] else value


@cache
def legendre_polynomial(degree: int) -> type[torch.autograd.Function]:
    """Pₙ as a custom autograd Function: Pₙ(t) forward, Pₙ'(t) backward, both by Horner's
    rule in the power basis (P3: 2.5t³ − 1.5t; P3': 7.5t² − 1.5). One class per degree,
    made once, so that a compiled fit sees the same class every time."""
    power = tuple(float(c) for c in npleg.leg2poly([0] * degree + [1])[::-1])
    derivative = tuple(c * (degree - i) for i, c in enumerate(power[:-1]))

    class LegendrePolynomial(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(t)
            return _horner(power, t)

        @staticmethod
        def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
            (t,) = ctx.saved_tensors
            return grad_output * _horner(derivative, t)

    LegendrePolynomial.__name__ = LegendrePolynomial.__qualname__ = f"LegendrePolynomial{degree}"
    return LegendrePolynomial


def loss_of(params: tuple[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
            polynomial: type[torch.autograd.Function],
            scale: torch.Tensor | None) -> torch.Tensor:
    """Σ(a + b·Pₙ(c + d·x) − y)², with fused multiply-adds; each residual over its σ when
    ``scale`` = 1/σ is given."""
    a, b, c, d = params[0].unbind()
    return sse(torch.addcmul(a, b, polynomial.apply(torch.addcmul(c, d, x))), y, scale)


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    x, y, degree = problem.x, problem.y, request.degree
    inputs = (x, y, legendre_polynomial(degree), problem.scale)
    params = torch.tensor(INITIAL, dtype=x.dtype, device=x.device)
    report.coefficients = lambda: named(params.detach().cpu())

    descend(loss_of, [params], inputs, request.learning_rate, request.steps, report,
            compiled=problem.compiled)

    with torch.no_grad():
        final_loss = loss_of((params,), *inputs).item()
    coefficients = named(params.detach().cpu())
    v = coefficients
    formula = f"y = {v['a']} + {v['b']} * P{degree}({v['c']} + {v['d']} x)"
    return Fit(coefficients, named(INITIAL), formula, final_loss, request.steps)
