"""module: a custom ``nn.Module`` polynomial trained with ``torch.optim.SGD``."""

import torch

from models import FitRequest
from worker.approaches.optim import OPTIMIZERS
from worker.fit import Fit, Problem, Report, initial_normal, named, polynomial_formula


class Polynomial(torch.nn.Module):
    """y = a + b x + c x² + d x³ (any degree); its input is the columns 1, x, x², …"""

    def __init__(self, initial: torch.Tensor) -> None:
        super().__init__()
        self.coefficients = torch.nn.Parameter(initial.clone())

    def forward(self, powers: torch.Tensor) -> torch.Tensor:
        return powers @ self.coefficients

    def string(self) -> str:
        return polynomial_formula(named(self.coefficients.detach().cpu()))


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    powers = problem.powers(request.degree)
    initial = initial_normal(request, request.degree + 1, problem.device)
    model = Polynomial(initial)
    criterion = torch.nn.MSELoss(reduction="sum")
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
