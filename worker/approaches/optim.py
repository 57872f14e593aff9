"""optim: the nn model trained by a ``torch.optim`` optimizer (RMSprop by default)."""

import torch

from models import FitRequest
from worker.approaches.nn import coefficients_of, descend_compiled, linear_model
from worker.fit import Fit, Problem, Report, polynomial_formula

OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def fit(problem: Problem, request: FitRequest, report: Report) -> Fit:
    xx = problem.powers(request.degree)[:, 1:].contiguous()  # columns x, x², x³
    model = linear_model(problem, request)
    initial = coefficients_of(model)
    loss_fn = torch.nn.MSELoss(reduction="sum")

    if problem.compiled:  # the sgd optimizer only (worker.approaches.compiles)
        descend_compiled(model, xx, problem, request, report)
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
