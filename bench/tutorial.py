"""The tutorial's programs as written, with its typos corrected (``b * x``, ``learning_rate``,
``reduction='sum'``), started from given coefficients: the reference that the tests replay
and that bench/approaches.py times polyfit against.

Each function takes the starting coefficients (a, b, c, d[, e]), the data and the settings,
runs the tutorial's loop, and returns the final coefficients and the final loss.
"""

from __future__ import annotations

import random

import numpy as np
import torch

Result = tuple[list[float], float]


def numpy_manual(start, x, y, steps, learning_rate) -> Result:
    a, b, c, d = start
    for _t in range(steps):
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = np.square(y_pred - y).sum()
        grad_y_pred = 2.0 * (y_pred - y)
        grad_a = grad_y_pred.sum()
        grad_b = (grad_y_pred * x).sum()
        grad_c = (grad_y_pred * x**2).sum()
        grad_d = (grad_y_pred * x**3).sum()
        a -= learning_rate * grad_a
        b -= learning_rate * grad_b
        c -= learning_rate * grad_c
        d -= learning_rate * grad_d
    loss = np.square(a + b * x + c * x**2 + d * x**3 - y).sum()
    return [float(a), float(b), float(c), float(d)], float(loss)


def tensor_manual(start, x, y, steps, learning_rate) -> Result:
    a, b, c, d = (torch.tensor(v, dtype=x.dtype, device=x.device) for v in start)
    for _t in range(steps):
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = (y_pred - y).pow(2).sum().item()
        grad_y_pred = 2.0 * (y_pred - y)
        grad_a = grad_y_pred.sum()
        grad_b = (grad_y_pred * x).sum()
        grad_c = (grad_y_pred * x**2).sum()
        grad_d = (grad_y_pred * x**3).sum()
        a -= learning_rate * grad_a
        b -= learning_rate * grad_b
        c -= learning_rate * grad_c
        d -= learning_rate * grad_d
    loss = (a + b * x + c * x**2 + d * x**3 - y).pow(2).sum().item()
    return [a.item(), b.item(), c.item(), d.item()], loss


def autograd(start, x, y, steps, learning_rate) -> Result:
    a, b, c, d = (torch.tensor(v, dtype=x.dtype, device=x.device, requires_grad=True)
                  for v in start)
    for t in range(steps):
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = (y_pred - y).pow(2).sum()
        if t % 100 == 99:
            loss.item()  # the tutorial prints it here
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    with torch.no_grad():
        loss = (a + b * x + c * x**2 + d * x**3 - y).pow(2).sum().item()
    return [a.item(), b.item(), c.item(), d.item()], loss


class LegendrePolynomial3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input**3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input**2 - 1)


def legendre(start, x, y, steps, learning_rate) -> Result:
    a, b, c, d = (torch.tensor(v, dtype=x.dtype, device=x.device, requires_grad=True)
                  for v in start)
    for t in range(steps):
        P3 = LegendrePolynomial3.apply
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        if t % 100 == 99:
            loss.item()  # the tutorial prints it here
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    with torch.no_grad():
        loss = (a + b * LegendrePolynomial3.apply(c + d * x) - y).pow(2).sum().item()
    return [a.item(), b.item(), c.item(), d.item()], loss


def _sequential(start, x) -> torch.nn.Sequential:
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
    model.to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        model[0].bias.fill_(start[0])
        model[0].weight.copy_(torch.tensor([start[1:]], dtype=x.dtype))
    return model


def _coefficients(model: torch.nn.Sequential) -> list[float]:
    linear = model[0]
    return [linear.bias.item(), *linear.weight.detach().flatten().tolist()]


def nn(start, x, y, steps, learning_rate) -> Result:
    p = torch.tensor([1, 2, 3], device=x.device)
    xx = x.unsqueeze(-1).pow(p)
    model = _sequential(start, x)
    loss_fn = torch.nn.MSELoss(reduction="sum")
    for t in range(steps):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        if t % 100 == 99:
            loss.item()  # the tutorial prints it here
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
    with torch.no_grad():
        loss = loss_fn(model(xx), y).item()
    return _coefficients(model), loss


def optim(start, x, y, steps, learning_rate) -> Result:
    p = torch.tensor([1, 2, 3], device=x.device)
    xx = x.unsqueeze(-1).pow(p)
    model = _sequential(start, x)
    loss_fn = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.RMSprop(model.parameters(), lr=learning_rate)
    for t in range(steps):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        if t % 100 == 99:
            loss.item()  # the tutorial prints it here
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        loss = loss_fn(model(xx), y).item()
    return _coefficients(model), loss


class Polynomial3(torch.nn.Module):
    def __init__(self, start, like: torch.Tensor):
        super().__init__()
        a, b, c, d = (torch.tensor(v, dtype=like.dtype, device=like.device) for v in start)
        self.a = torch.nn.Parameter(a)
        self.b = torch.nn.Parameter(b)
        self.c = torch.nn.Parameter(c)
        self.d = torch.nn.Parameter(d)

    def forward(self, x):
        return self.a + self.b * x + self.c * x**2 + self.d * x**3


def module(start, x, y, steps, learning_rate) -> Result:
    model = Polynomial3(start, x)
    criterion = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    for t in range(steps):
        y_pred = model(x)
        loss = criterion(y_pred, y)
        if t % 100 == 99:
            loss.item()  # the tutorial prints it here
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        loss = criterion(model(x), y).item()
    return [model.a.item(), model.b.item(), model.c.item(), model.d.item()], loss


class DynamicNet(torch.nn.Module):
    def __init__(self, start, like: torch.Tensor, draws: random.Random):
        super().__init__()
        for name, v in zip("abcde", start, strict=True):
            setattr(self, name, torch.nn.Parameter(torch.tensor(v, dtype=like.dtype,
                                                                device=like.device)))
        self.draws = draws

    def forward(self, x, top=None):
        y = self.a + self.b * x + self.c * x**2 + self.d * x**3
        for exp in range(4, top or self.draws.randint(4, 6)):
            y = y + self.e * x**exp
        return y


def dynamic(start, x, y, steps, learning_rate, seed: int = 0) -> Result:
    model = DynamicNet(start, x, random.Random(seed))
    criterion = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9)
    for t in range(steps):
        y_pred = model(x)
        loss = criterion(y_pred, y)
        if t % 2000 == 1999:
            loss.item()  # the tutorial prints it here
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        loss = criterion(model(x, top=6), y).item()
    return [getattr(model, n).item() for n in "abcde"], loss


PROGRAMS = {
    "numpy": numpy_manual,
    "tensor": tensor_manual,
    "autograd": autograd,
    "legendre": legendre,
    "nn": nn,
    "optim": optim,
    "module": module,
    "dynamic": dynamic,
}
