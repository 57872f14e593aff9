"""optim: the nn model trained by a ``torch.optim`` optimizer (RMSprop by default)."""

import torch
from torch.optim.rmsprop import rmsprop

from polyfit.models import FitRequest
from polyfit.worker.engine.approaches.nn import (
    coefficients_of,
    descend_model,
    linear_model,
    loss_of,
    model_layout,
)
from polyfit.worker.engine.fit import Fit, Problem, Report, polynomial_formula, sse
from polyfit.worker.engine.replay import replayable

OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def rmsprop_step(params: list[torch.Tensor], square_avgs: list[torch.Tensor],
                 step_counts: list[torch.Tensor], learning_rate: float, xx: torch.Tensor,
                 y: torch.Tensor, layout: torch.nn.Sequential,
                 scale: torch.Tensor | None) -> torch.Tensor:
    """One step of the loop below with RMSprop, as torch.optim.RMSprop runs it by default."""
    loss = loss_of(tuple(params), xx, y, layout, scale)
    grads = torch.autograd.grad(loss, params)
    rmsprop([p.detach() for p in params], list(grads), square_avgs, [], [], step_counts,
            lr=learning_rate, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
            centered=False, foreach=False)
    return loss.detach()


def descend_rmsprop(model: torch.nn.Sequential, xx: torch.Tensor, problem: Problem,
                    request: FitRequest, report: Report) -> None:
    """The loop below with RMSprop, its step traced once and replayed (worker/engine/replay.py):
    bitwise the same numbers."""
    params = [model[0].weight, model[0].bias]
    square_avgs = [torch.zeros_like(p) for p in params]
    step_counts = [torch.tensor(0.0) for _ in params]
    replay = replayable(rmsprop_step, params, square_avgs, step_counts, request.learning_rate,
                        xx, problem.y, model_layout(request.degree), problem.scale,
                        calls=request.steps)
    for t in range(request.steps):
        loss = replay()
        if report.due(t):
            report(t, loss)


def descend_eagerly(model: torch.nn.Module, inputs: torch.Tensor, y: torch.Tensor,
                    request: FitRequest, report: Report,
                    scale: torch.Tensor | None = None) -> None:
    """The tutorial's loop with ``request.optimizer`` from torch.optim, run as written: for
    the updates that are not replayed; ``scale`` = 1/σ weights each residual."""
    optimizer = OPTIMIZERS[request.optimizer](model.parameters(), lr=request.learning_rate)
    for t in range(request.steps):
        loss = sse(model(inputs), y, scale)  # the tutorial's MSELoss(reduction="sum")
        if report.due(t):
            report(t, loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    xx = problem.powers(request.degree)[:, 1:].contiguous()  # columns x, x², x³
    model = linear_model(problem, request)
    initial = coefficients_of(model)
    report.coefficients = lambda: coefficients_of(model)

    if request.optimizer == "sgd":  # replayed or compiled, as nn
        descend_model(model, xx, problem, request, report)
    elif request.optimizer == "rmsprop":
        descend_rmsprop(model, xx, problem, request, report)
    else:  # Adam reads its step count back for its bias correction every step: not replayable
        descend_eagerly(model, xx, problem.y, request, report, problem.scale)

    with torch.no_grad():
        final_loss = sse(model(xx), problem.y, problem.scale).item()
    coefficients = coefficients_of(model)
    return Fit(coefficients, initial, polynomial_formula(coefficients), final_loss, request.steps)
