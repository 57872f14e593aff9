"""Batched polynomial fits — tensor, autograd, nn, optim, module: the coefficients of all K
members are one (K, p) tensor W over the columns 1, x, …, xⁿ.

Each step is two matrix products for the whole batch — residuals R = W·Pᵀ − y (K, n) and
gradients 2·R·P (K, p) — then the update with a (K, 1) learning rate. ``autograd`` gets the
gradient from autograd on the summed loss (a member's gradient depends only on
its own row); the others use it in closed form, which is what autograd computes for a
sum-of-squares loss of a linear model. ``nn`` and ``optim`` keep the bias as coefficient a,
so W's first column is the Linear's bias. Members equal their single jobs to a bound, not to
the bit: docs/REPRODUCIBILITY.md.
"""

from __future__ import annotations

import torch

from polyfit.models import FitRequest
from polyfit.worker.engine.batched.optimizers import OPTIMIZERS
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import LETTERS, Fit, Problem, initial_normal, polynomial_formula
from polyfit.worker.engine.replay import replayable


def linear_start(request: FitRequest) -> torch.Tensor:
    """(bias, weights…): the draws ``nn.linear_model`` makes from the seed — weight, then
    bias, uniform in ±1/√degree, in float32 — without building a Linear per member (a test
    holds the two equal)."""
    generator = torch.Generator().manual_seed(request.seed)
    bound = 1 / request.degree**0.5
    weight = torch.empty(request.degree).uniform_(-bound, bound, generator=generator)
    bias = torch.empty(1).uniform_(-bound, bound, generator=generator)
    return torch.cat([bias, weight])


def initial_values(problem: Problem, requests: list[FitRequest]) -> torch.Tensor:
    """(K, p): each member's start, drawn from its seed exactly as its single job draws it,
    on the CPU (as single jobs draw), then moved to the device once."""
    base = requests[0]
    if base.approach in ("nn", "optim"):
        values = torch.stack([linear_start(r) for r in requests])
    else:
        values = torch.stack([initial_normal(r, base.degree + 1, "cpu") for r in requests])
    return values.to(device=problem.device, dtype=getattr(torch, base.dtype))


CPU_BLOCK_BYTES = 2**21


def member_blocks(size: int, y: torch.Tensor, tensors: int) -> list[slice]:
    """The members in blocks whose ``tensors`` working (rows × n) tensors stay in a CPU's
    cache together (a K × n tensor of thousands of members would not); on a GPU all at once."""
    rows = size if y.is_cuda else max(1, CPU_BLOCK_BYTES // (tensors * len(y) * y.element_size()))
    return [slice(first, min(first + rows, size)) for first in range(0, size, rows)]


class ExplicitGradient:
    """The gradient of each member's Σ R² in closed form, 2·R·P, with R = W·Pᵀ − y.

    R comes from one matrix product: W carries a column of ones and Pᵀ a row of −y, so
    [W 1]·[Pᵀ; −y] = W·Pᵀ − y. The gradient is computed as (Pᵀ·Rᵀ)ᵀ, the layout BLAS
    reduces over n fastest. On the CPU the members go through in blocks whose residuals
    stay in cache (a K × n residual of thousands of members would not); on a GPU all at
    once. ``w`` is a view of the augmented matrix: updating it in place updates what the
    next product reads.
    """

    def __init__(self, powers: torch.Tensor, y: torch.Tensor, start: torch.Tensor) -> None:
        size, width = start.shape
        self.augmented = torch.cat([start, torch.ones_like(start[:, :1])], dim=1)
        self.w = self.augmented[:, :width]
        self.operand = torch.cat([powers.T, -y.unsqueeze(0)]).contiguous()
        self.powers_t = self.operand[:width]
        self.blocks = member_blocks(size, y, tensors=1)
        rows = self.blocks[0].stop
        self.residual = torch.empty(rows, len(y), dtype=y.dtype, device=y.device)
        self.gradient_t = torch.empty(width, size, dtype=y.dtype, device=y.device)
        self.loss = torch.empty(size, dtype=y.dtype, device=y.device)

    def __call__(self, record: bool) -> torch.Tensor:
        """The (K, p) gradient at the current W; with ``record``, also each member's loss."""
        for block in self.blocks:
            residual = self.residual[: block.stop - block.start]
            torch.mm(self.augmented[block], self.operand, out=residual)
            torch.mm(self.powers_t, residual.T, out=self.gradient_t[:, block])
            if record:
                torch.sum(residual.pow(2), 1, out=self.loss[block])
        return self.gradient_t.T.mul_(2)

    def losses(self) -> torch.Tensor:
        """(K,): each member's loss at the W of the last recording call."""
        return self.loss


class AutogradGradient:
    """The same gradient from autograd: predictions W·Pᵀ, the members' summed squared error
    (``mse_loss``, sum), its gradient with respect to W; a member's gradient is its own
    row's. On the CPU, block by block, each block's predictions and their gradient staying in
    cache. The step is traced once and replayed (worker/engine/replay.py): autograd's kernels
    without its bookkeeping, one replay for steps that record the losses and one for the
    others."""

    def __init__(self, powers: torch.Tensor, y: torch.Tensor, start: torch.Tensor,
                 steps: int) -> None:
        self.w = start.clone()
        self.gradient = torch.empty_like(self.w)
        self.loss = torch.empty(len(start), dtype=y.dtype, device=y.device)
        # Blocks sized by the predictions alone, their gradient coming on top: K = 256 is
        # then one block, faster than two (docs/PERFORMANCE.md).
        blocks = member_blocks(len(start), y, tensors=1)
        targets = y.expand(blocks[0].stop, len(y))
        trainable = self.w.detach().requires_grad_()  # the same storage
        self.replays = {record: replayable(_block_gradients, trainable, powers.T.contiguous(),
                                           y, targets, blocks, self.gradient, self.loss, record,
                                           calls=steps)
                        for record in (False, True)}

    def __call__(self, record: bool) -> torch.Tensor:
        self.replays[record]()
        return self.gradient

    def losses(self) -> torch.Tensor:
        """(K,): each member's loss at the W of the last recording call."""
        return self.loss


def _block_gradients(w: torch.Tensor, powers_t: torch.Tensor, y: torch.Tensor,
                     targets: torch.Tensor, blocks: list[slice], gradient: torch.Tensor,
                     loss: torch.Tensor, record: bool) -> torch.Tensor:
    for block in blocks:
        rows = w[block]
        # through a column-major copy of the rows (p × b values), whose gradient autograd's
        # mm backward computes as (Pᵀ·Gᵀ)ᵀ, the faster product (docs/PERFORMANCE.md)
        predictions = torch.mm(rows.t().contiguous().t(), powers_t)
        summed = torch.nn.functional.mse_loss(predictions, targets[: len(predictions)],
                                              reduction="sum")
        (gradient[block],) = torch.autograd.grad(summed, [rows])
        if record:
            torch.sum((predictions.detach() - y).pow(2), 1, out=loss[block])
    return gradient


def fit_batch(problem: Problem, requests: list[FitRequest],
              report: BatchReport) -> list[Fit | None]:
    """Fit all members together; a stopped member's entry is None (its reason is in report)."""
    base = requests[0]
    powers, y = problem.weighted(base.degree)  # each row over its σ
    powers_t = powers.T.contiguous()
    initial = initial_values(problem, requests)
    if base.approach == "autograd":
        gradient = AutogradGradient(powers, y, initial, base.steps)
    else:
        gradient = ExplicitGradient(powers, y, initial)
    w = gradient.w
    learning_rate = torch.tensor([[r.learning_rate] for r in requests], dtype=w.dtype,
                                 device=w.device)
    optimizer = OPTIMIZERS[base.optimizer if base.approach in ("optim", "module") else "sgd"](
        learning_rate)

    for t in range(base.steps):
        due = report.due(t)
        grad = gradient(due)
        if due:
            report.record(t, gradient.losses())
        if report.changed:
            rows = report.take_stopped()
            w[rows], grad[rows] = 0, 0  # a diverged row's gradient is NaN: NaN·0 is NaN
            optimizer.freeze(rows)
            if report.all_stopped:
                break
        optimizer.step(w, grad)

    residual = torch.addmm(y, w, powers_t, beta=-1)
    final_losses = residual.pow(2).sum(1).tolist()
    fits: list[Fit | None] = []
    for row, (values, start) in enumerate(zip(w.tolist(), initial.tolist(), strict=True)):
        if row in report.stopped:
            fits.append(None)
            continue
        coefficients = _named(values)
        fits.append(Fit(coefficients, _named(start), polynomial_formula(coefficients),
                        final_losses[row], base.steps))
    return fits


def _named(values: list[float]) -> dict[str, float]:
    """``worker.fit.named`` for a row that ``tolist()`` already made Python floats, without
    a NumPy array per member (thousands of members)."""
    return dict(zip(LETTERS, values, strict=False))
