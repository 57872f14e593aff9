"""nn: ``Sequential(Linear(n, 1), Flatten(0, 1))`` on (x, x², x³), updated by hand (SGD)."""

from functools import cache

import torch

from polyfit.models import FitRequest
from polyfit.worker.engine.descent import descend
from polyfit.worker.engine.fit import Fit, Problem, Report, named, polynomial_formula, sse


def linear_model(problem: Problem, request: FitRequest) -> torch.nn.Sequential:
    """The tutorial's model, with torch's Linear initialisation drawn from the job's seed."""
    linear = torch.nn.Linear(request.degree, 1)
    generator = torch.Generator().manual_seed(request.seed)
    bound = 1 / request.degree**0.5  # what Linear.reset_parameters draws from
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound, generator=generator)
        linear.bias.uniform_(-bound, bound, generator=generator)
    model = torch.nn.Sequential(linear, torch.nn.Flatten(0, 1))
    return model.to(device=problem.device, dtype=getattr(torch, request.dtype))


@cache
def model_layout(degree: int) -> torch.nn.Sequential:
    """The same model with no parameters of its own (on the meta device), for ``loss_of`` to
    apply to a fit's: one object per degree, so that compiled fits compile once."""
    return torch.nn.Sequential(torch.nn.Linear(degree, 1), torch.nn.Flatten(0, 1)).to("meta")


def loss_of(params: tuple[torch.Tensor, ...], xx: torch.Tensor, y: torch.Tensor,
            model: torch.nn.Sequential, scale: torch.Tensor | None) -> torch.Tensor:
    """The summed squared error of ``model`` run with ``params`` (its weight and bias), each
    residual over its σ when ``scale`` = 1/σ is given (the bias is no column to weight)."""
    weight, bias = params
    predictions = torch.func.functional_call(model, {"0.weight": weight, "0.bias": bias}, (xx,))
    return sse(predictions, y, scale)


def descend_model(model: torch.nn.Sequential, xx: torch.Tensor, problem: Problem,
                  request: FitRequest, report: Report) -> None:
    """SGD on the model's parameters (param -= learning_rate · grad), in place, through
    worker/engine/descent.py."""
    inputs = (xx, problem.y, model_layout(request.degree), problem.scale)
    descend(loss_of, [p.detach() for p in model.parameters()], inputs, request.learning_rate,
            request.steps, report, compiled=problem.compiled)


def coefficients_of(model: torch.nn.Sequential) -> dict[str, float]:
    linear = model[0]
    return named([linear.bias.item(), *linear.weight.detach().flatten().tolist()])


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    xx = problem.powers(request.degree)[:, 1:].contiguous()  # columns x, x², x³
    model = linear_model(problem, request)
    initial = coefficients_of(model)
    report.coefficients = lambda: coefficients_of(model)
    descend_model(model, xx, problem, request, report)

    with torch.no_grad():
        final_loss = sse(model(xx), problem.y, problem.scale).item()
    coefficients = coefficients_of(model)
    return Fit(coefficients, initial, polynomial_formula(coefficients), final_loss, request.steps)
