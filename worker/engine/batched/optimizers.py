"""The update rules of a batch, member by member: SGD, RMSprop and Adam with a (K, 1)
learning rate, following ``torch.optim``'s single-tensor formulas term by term (defaults:
RMSprop alpha 0.99, eps 1e-8; Adam betas (0.9, 0.999), eps 1e-8), so that a member takes the
same steps the optimizer takes on a single job's parameters.
"""

from __future__ import annotations

import torch


class SGD:
    """param ← param − lr·grad."""

    def __init__(self, learning_rate: torch.Tensor) -> None:
        self.neg_lr = -learning_rate

    def step(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        param.addcmul_(grad, self.neg_lr)

    def freeze(self, rows: list[int]) -> None:
        """Stop updating these members."""
        self.neg_lr[rows] = 0


class RMSprop(SGD):
    """square_avg ← α·square_avg + (1−α)·grad²; param ← param − lr·grad / (√square_avg + ε)."""

    alpha, eps = 0.99, 1e-8

    def __init__(self, learning_rate: torch.Tensor) -> None:
        super().__init__(learning_rate)
        self.square_avg: torch.Tensor | None = None

    def step(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        if self.square_avg is None:
            self.square_avg = torch.zeros_like(param)
        self.square_avg.mul_(self.alpha).addcmul_(grad, grad, value=1 - self.alpha)
        avg = self.square_avg.sqrt().add_(self.eps)
        param.add_(grad.mul(self.neg_lr).div_(avg))  # as addcdiv: param + (value·grad) / avg


class Adam(SGD):
    """Adam with bias correction; the step size lr / (1 − β₁ᵗ) is worked out per member."""

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, learning_rate: torch.Tensor) -> None:
        super().__init__(learning_rate)
        self.lr64 = learning_rate.double()
        self.steps = 0
        self.exp_avg: torch.Tensor | None = None
        self.exp_avg_sq: torch.Tensor | None = None

    def step(self, param: torch.Tensor, grad: torch.Tensor) -> None:
        if self.exp_avg is None:
            self.exp_avg, self.exp_avg_sq = torch.zeros_like(param), torch.zeros_like(param)
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1**self.steps
        bias_correction2_sqrt = (1 - self.beta2**self.steps) ** 0.5
        neg_step_size = (-(self.lr64 / bias_correction1)).to(param.dtype)
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        param.add_(self.exp_avg.mul(neg_step_size).div_(denom))

    def freeze(self, rows: list[int]) -> None:
        super().freeze(rows)
        self.lr64[rows] = 0


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam}
