"""nn: ``Sequential(Linear(n, 1), Flatten(0, 1))`` on (x, x², x³), updated by hand (SGD)."""

import torch

from models import FitRequest
from worker.fit import Fit, Problem, Report, named, polynomial_formula


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


def coefficients_of(model: torch.nn.Sequential) -> dict[str, float]:
    linear = model[0]
    return named([linear.bias.item(), *linear.weight.detach().flatten().tolist()])


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    xx = problem.powers(request.degree)[:, 1:].contiguous()  # columns x, x², x³
    model = linear_model(problem, request)
    initial = coefficients_of(model)
    loss_fn = torch.nn.MSELoss(reduction="sum")
    params = list(model.parameters())

    for t in range(request.steps):
        loss = loss_fn(model(xx), problem.y)
        if report.due(t):
            report(t, loss)
        grads = torch.autograd.grad(loss, params)  # what loss.backward() leaves in .grad
        with torch.no_grad():  # param -= learning_rate * param.grad, for all at once
            torch._foreach_add_(params, grads, alpha=-request.learning_rate)

    with torch.no_grad():
        final_loss = loss_fn(model(xx), problem.y).item()
    coefficients = coefficients_of(model)
    return Fit(coefficients, initial, polynomial_formula(coefficients), final_loss, request.steps)
