"""module: a custom ``nn.Module`` polynomial trained with ``torch.optim.SGD``."""

from functools import cache

import torch

from polyfit.models import FitRequest
from polyfit.worker.engine.approaches.optim import descend_eagerly
from polyfit.worker.engine.descent import descend
from polyfit.worker.engine.fit import (
    Fit,
    Problem,
    Report,
    initial_normal,
    named,
    polynomial_fit,
    sse,
)


class Polynomial(torch.nn.Module):
    """y = a + b x + c x² + d x³ (any degree); its input is the columns 1, x, x², …"""

    def __init__(self, initial: torch.Tensor) -> None:
        super().__init__()
        self.coefficients = torch.nn.Parameter(initial.clone())

    def forward(self, powers: torch.Tensor) -> torch.Tensor:
        return powers @ self.coefficients


@cache
def model_layout(degree: int) -> Polynomial:
    """A Polynomial with no coefficients of its own (meta device), for ``loss_of``."""
    return Polynomial(torch.empty(degree + 1, device="meta"))


def loss_of(params: tuple[torch.Tensor], powers: torch.Tensor, y: torch.Tensor,
            model: Polynomial) -> torch.Tensor:
    return sse(torch.func.functional_call(model, {"coefficients": params[0]}, (powers,)), y)


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    powers, y = problem.weighted(request.degree)  # each row over its σ
    initial = initial_normal(request, request.degree + 1, problem.device)
    model = Polynomial(initial)
    report.coefficients = lambda: named(model.coefficients.detach().cpu())
    criterion = torch.nn.MSELoss(reduction="sum")

    if request.optimizer == "sgd":  # replayed or compiled
        descend(loss_of, [model.coefficients.detach()],
                (powers, y, model_layout(request.degree)), request.learning_rate,
                request.steps, report, compiled=problem.compiled)
    else:  # RMSprop and Adam step as torch.optim writes them, not replayed
        descend_eagerly(model, powers, y, request, report)

    with torch.no_grad():
        final_loss = criterion(model(powers), y).item()
    return polynomial_fit(model.coefficients.detach().cpu(), initial.cpu(), final_loss,
                          request.steps)
