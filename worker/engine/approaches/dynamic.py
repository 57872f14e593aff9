"""dynamic: control flow and weight sharing — a cubic plus e·x⁴ and e·x⁵ drawn at random.

Each step draws ``randint(4, 6)`` as the tutorial does and adds e·x^k for k in 4 … draw-1:
no extra term, x⁴, or x⁴ and x⁵, all with the one shared weight e. The draws come from
the job's seed.
"""

import random

import torch

from polyfit.models import FitRequest
from polyfit.worker.engine.descent import descend
from polyfit.worker.engine.fit import Fit, Problem, Report, initial_normal, named, sse


class DynamicNet(torch.nn.Module):
    def __init__(self, initial: torch.Tensor) -> None:
        super().__init__()
        self.cubic = torch.nn.Parameter(initial[:4].clone())  # a, b, c, d
        self.e = torch.nn.Parameter(initial[4].clone())

    def forward(self, powers: torch.Tensor, top: int) -> torch.Tensor:
        y = powers[:, :4] @ self.cubic
        for exp in range(4, top):
            y = y + self.e * powers[:, exp]
        return y

    def coefficients(self) -> torch.Tensor:
        return torch.cat([self.cubic.detach(), self.e.detach().reshape(1)]).cpu()


LAYOUT = DynamicNet(torch.empty(5, device="meta"))  # no values of its own, for loss_of


def loss_of(params: tuple[torch.Tensor, torch.Tensor], powers: torch.Tensor, y: torch.Tensor,
            top: int) -> torch.Tensor:
    cubic, e = params
    return sse(torch.func.functional_call(LAYOUT, {"cubic": cubic, "e": e}, (powers, top)), y)


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    powers, y = problem.weighted(5)  # columns 1, x, …, x⁵ (and y) over σ
    initial = initial_normal(request, 5, problem.device)
    model = DynamicNet(initial)
    report.coefficients = lambda: named(model.coefficients())
    draws = random.Random(request.seed)
    criterion = torch.nn.MSELoss(reduction="sum")

    def draw() -> tuple[tuple[int], tuple[int, ...]]:
        top = draws.randint(4, 6)
        return (top,), (() if top > 4 else (1,))  # without x⁴, e (param 1) has no gradient

    descend(loss_of, [model.cubic.detach(), model.e.detach()], (powers, y),
            request.learning_rate, request.steps, report, request.momentum, draw)

    with torch.no_grad():
        final_loss = criterion(model(powers, 6), y).item()
    v = named(model.coefficients())
    formula = (f"y = {v['a']} + {v['b']} x + {v['c']} x^2 + {v['d']} x^3"
               f" + {v['e']} x^4 ? + {v['e']} x^5 ?")
    return Fit(v, named(initial.cpu()), formula, final_loss, request.steps)
