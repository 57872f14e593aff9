"""optim: the nn model trained by a ``torch.optim`` optimizer (RMSprop by default)."""

import torch
from torch.optim.rmsprop import rmsprop
from torch.optim.sgd import sgd

from models import FitRequest
from worker.approaches.nn import coefficients_of, descend_compiled, linear_model, model_layout
from worker.fit import Fit, Problem, Report, polynomial_formula, sse
from worker.replay import replayable

OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def rmsprop_step(params: list[torch.Tensor], grads: list[torch.Tensor],
                 state: list[torch.Tensor], learning_rate: float) -> None:
    """torch.optim.RMSprop's update, with its defaults."""
    square_avgs, steps = state[:len(params)], state[len(params):]
    rmsprop(params, grads, square_avgs, [], [], steps, lr=learning_rate, alpha=0.99, eps=1e-8,
            weight_decay=0.0, momentum=0.0, centered=False, foreach=False)


def rmsprop_state(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """RMSprop's state before its first step: square averages, then step counts."""
    return [torch.zeros_like(p) for p in params] + [torch.tensor(0.0) for _ in params]


def sgd_step(params: list[torch.Tensor], grads: list[torch.Tensor], state: list[torch.Tensor],
             learning_rate: float) -> None:
    """torch.optim.SGD's update, with its defaults (it keeps no state)."""
    sgd(params, grads, [None] * len(params), lr=learning_rate, momentum=0.0, weight_decay=0.0,
        dampening=0.0, nesterov=False, maximize=False, foreach=False)


# The optimizers whose steps replay (worker/replay.py), by name: update, initial state. Adam
# reads its step count back for its bias correction at every step, so it runs eagerly.
REPLAYED = {"rmsprop": (rmsprop_step, rmsprop_state), "sgd": (sgd_step, lambda params: [])}


def descend_replayed(model: torch.nn.Sequential, xx: torch.Tensor, problem: Problem,
                     request: FitRequest, report: Report) -> None:
    """The eager loop below, its step traced once and replayed: bitwise the same numbers."""
    update, initial_state = REPLAYED[request.optimizer]
    layout = model_layout(request.degree)
    params = [model[0].weight, model[0].bias]
    state = initial_state(params)

    def step(params: list[torch.Tensor], state: list[torch.Tensor], xx: torch.Tensor,
             y: torch.Tensor) -> torch.Tensor:
        weight, bias = params
        loss = sse(torch.func.functional_call(layout, {"0.weight": weight, "0.bias": bias},
                                              (xx,)), y)
        grads = torch.autograd.grad(loss, params)
        update([p.detach() for p in params], list(grads), state, request.learning_rate)
        return loss.detach()

    replay = replayable(step, params, state, xx, problem.y)
    for t in range(request.steps):
        loss = replay()
        if report.due(t):
            report(t, loss)


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    xx = problem.powers(request.degree)[:, 1:].contiguous()  # columns x, x², x³
    model = linear_model(problem, request)
    initial = coefficients_of(model)
    loss_fn = torch.nn.MSELoss(reduction="sum")

    if problem.compiled:  # the sgd optimizer only (worker.approaches.compiles)
        descend_compiled(model, xx, problem, request, report)
    elif request.optimizer in REPLAYED:
        descend_replayed(model, xx, problem, request, report)
    else:
        optimizer = OPTIMIZERS[request.optimizer](model.parameters(), lr=request.learning_rate)
        for t in range(request.steps):
            loss = loss_fn(model(xx), problem.y)
            if report.due(t):
                report(t, loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    with torch.no_grad():
        final_loss = loss_fn(model(xx), problem.y).item()
    coefficients = coefficients_of(model)
    return Fit(coefficients, initial, polynomial_formula(coefficients), final_loss, request.steps)
