"""module: a custom ``nn.Module`` polynomial trained with ``torch.optim.SGD``."""

from functools import cache

import torch

from models import FitRequest
from worker.approaches.optim import OPTIMIZERS
from worker.descent import descend
from worker.fit import Fit, Problem, Report, initial_normal, named, polynomial_formula, sse


class Polynomial(torch.nn.Module):
    """y = a + b x + c x² + d x³ (any degree); its input is the columns 1, x, x², …"""

    def __init__(self, initial: torch.Tensor) -> None:
        super().__init__()
        self.coefficients = torch.nn.Parameter(initial.clone())

    def forward(self, powers: torch.Tensor) -> torch.Tensor:
        return powers @ self.coefficients

    def string(self) -> str:
        return polynomial_formula(named(self.coefficients.detach().cpu()))


@cache
def model_layout(degree: int) -> Polynomial:
    """A Polynomial with no coefficients of its own (meta device), for ``loss_of``."""
    return Polynomial(torch.empty(degree + 1, device="meta"))


def loss_of(params: tuple[torch.Tensor], powers: torch.Tensor, y: torch.Tensor,
            model: Polynomial) -> torch.Tensor:
    return sse(torch.func.functional_call(model, {"coefficients": params[0]}, (powers,)), y)


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    powers = problem.powers(request.degree)
    initial = initial_normal(request, request.degree + 1, problem.device)
    model = Polynomial(initial)
    criterion = torch.nn.MSELoss(reduction="sum")

    if request.optimizer == "sgd":  # replayed or compiled
        descend(loss_of, [model.coefficients.detach()],
                (powers, problem.y, model_layout(request.degree)), request.learning_rate,
                request.steps, report, compiled=problem.compiled)
    else:
        optimizer = OPTIMIZERS[request.optimizer](model.parameters(), lr=request.learning_rate)
        for t in range(request.steps):
            loss = criterion(model(powers), problem.y)
            if report.due(t):
                report(t, loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    with torch.no_grad():
        final_loss = criterion(model(powers), problem.y).item()
    return Fit(named(model.coefficients.detach().cpu()), named(initial.cpu()), model.string(),
               final_loss, request.steps)
