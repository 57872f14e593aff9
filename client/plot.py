"""PNG pictures of finished fits and sweeps, for ``polyfit-client plot``.

A fit's picture has three panels: the data (or the sampled target) with the fitted curve,
the 95 % confidence band of its mean prediction where the result has a covariance, and, for
polynomial approaches, the least-squares optimum dashed; below it the residuals (data − fit);
and beside them the loss history on a log scale. The points are rebuilt from the recorded
request, the curve from the coefficients:

- polynomial approaches: y = a + b x + c x² + …
- legendre: y = a + b·Pₙ(c + d·x)
- dynamic: y = a + b x + c x² + d x³ + e x⁴ + e x⁵, the full model the worker scores its
  final loss with (during training each step draws whether the x⁴ and x⁵ terms take part).

matplotlib is imported only here and only when drawing, so a client without the ``plot``
extra works for everything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.polynomial import polynomial

from polyfit.client.errors import InvalidRequest
from polyfit.models import JobRecord, JobState
from polyfit.models.curves import CURVE_POINTS, evaluate, sample
from polyfit.models.least_squares import fit_polynomial
from polyfit.models.request import POLYNOMIAL_APPROACHES
from polyfit.models.statistics import mean_prediction_band
from polyfit.models.sweep import SweepMember, SweepRecord

SIZE = (11.0, 4.5)  # inches
DPI = 100  # so a picture is 1100 × 450 pixels
MAX_MARKERS = 5000  # user data beyond this many points is thinned for drawing
MAX_SEED_LINES = 10  # a sweep over more seeds draws them all in one colour, unlabelled


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend, or a one-line error saying what to do."""
    try:
        import matplotlib
    except ImportError:
        raise InvalidRequest("plot: matplotlib is not installed — "
                             "install it with `pip install 'polyfit[plot]'`") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def model_title(approach: str, degree: int) -> str:
    """The model an approach fits, in a few characters, for the fit panel's title."""
    if approach == "legendre":
        return f"legendre: a + b·P{degree}(c + d·x)"
    if approach == "dynamic":
        return "dynamic: a + b·x + c·x² + d·x³ + e·x⁴ + e·x⁵"
    return f"{approach}: polynomial of degree {degree}"


def draw_fit(record: JobRecord, path: str | Path) -> Path:
    """Write the two-panel picture of a succeeded job to ``path``; returns the path."""
    plt = pyplot()
    request, result = record.request, record.result
    approach, degree = request["approach"], request["degree"]
    x, y = sample(request)
    grid = np.linspace(x.min(), x.max(), CURVE_POINTS)
    figure = plt.figure(figsize=SIZE, dpi=DPI)
    panels = figure.add_gridspec(2, 2, height_ratios=(3, 1))
    fit_axes = figure.add_subplot(panels[0, 0])
    residual_axes = figure.add_subplot(panels[1, 0], sharex=fit_axes)
    loss_axes = figure.add_subplot(panels[:, 1])

    sigma = (request.get("data") or {}).get("sigma")
    if request.get("data"):
        step = max(1, len(x) // MAX_MARKERS)
        fit_axes.errorbar(x[::step], y[::step], None if sigma is None else sigma[::step],
                          fmt=".", color="0.55", markersize=4, elinewidth=0.8,
                          label="data ± σ" if sigma else "data")
    else:
        fit_axes.plot(x, y, color="0.55", linewidth=4, alpha=0.6, label=request["target"])
    fitted = evaluate(approach, result.coefficients, degree, grid)
    fit_axes.plot(grid, fitted, color="C0", linewidth=1.8, label=f"{approach} fit")
    statistics = result.statistics
    if statistics is not None and statistics.covariance is not None:
        _, half = mean_prediction_band(approach, degree, grid, result.coefficients,
                                       statistics.covariance, statistics.n_points)
        fit_axes.fill_between(grid, fitted - half, fitted + half, color="C0", alpha=0.25,
                              linewidth=0, label="95 % band of the mean")
    if approach in POLYNOMIAL_APPROACHES:
        optimum = polynomial.polyval(grid, fit_polynomial(x, y, degree, sigma).coefficients)
        fit_axes.plot(grid, optimum, "--", color="C3", linewidth=1.4,
                      label="least-squares optimum")
    fit_axes.set(title=model_title(approach, degree), ylabel="y")
    fit_axes.tick_params(labelbottom=False)
    fit_axes.legend(loc="best", fontsize="small")
    residuals = y - evaluate(approach, result.coefficients, degree, x)
    step = max(1, len(x) // MAX_MARKERS)
    residual_axes.axhline(0, color="0.55", linewidth=0.8)
    residual_axes.plot(x[::step], residuals[::step], "." if request.get("data") else "-",
                       color="C0", markersize=3, linewidth=1)
    residual_axes.set(xlabel="x", ylabel="residual")

    draw_history(loss_axes, result.loss_history, result.final_loss, result.optimum_loss,
                 weighted=sigma is not None)
    figure.suptitle(f"job {record.job_id} — final loss {result.final_loss:.6g}", fontsize=10)
    return save(plt, figure, path)


def draw_history(axes: Any, history: list[tuple[int, float]], final_loss: float,
                 optimum_loss: float | None, weighted: bool = False) -> None:
    """The loss at each recorded step on a log scale, with the optimum as a dotted line; the
    loss is χ² when the points were ``weighted``."""
    points = [(step, loss) for step, loss in history if loss > 0]
    if points:
        steps, losses = zip(*points, strict=True)
        axes.plot(steps, losses, color="C0", marker="." if len(points) < 60 else None,
                  label="loss")
    else:
        axes.plot([0], [max(final_loss, 1e-300)], "o", color="C0", label="final loss")
        axes.set_xticks([0])
        axes.text(0.5, 0.1, "closed form: no steps taken", transform=axes.transAxes,
                  ha="center", fontsize="small")
    if optimum_loss is not None and optimum_loss > 0:
        axes.axhline(optimum_loss, linestyle=":", color="C3", label="least-squares optimum")
    axes.set_yscale("log")
    axes.set(title="loss history", xlabel="step",
             ylabel="loss (χ², each residual over its σ)" if weighted else "loss (sum of squares)")
    axes.legend(loc="best", fontsize="small")


def save(plt: Any, figure: Any, path: str | Path) -> Path:
    """Write the figure (format from the file's suffix, PNG without one) and close it."""
    path = Path(path)
    figure.tight_layout()
    try:
        figure.savefig(path, format=None if path.suffix else "png")
    except OSError as error:
        raise InvalidRequest(f"plot: cannot write {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise InvalidRequest(f"plot: {error}; name the file .png") from None
    finally:
        plt.close(figure)
    return path


def draw_sweep(sweep: SweepRecord, path: str | Path) -> Path:
    """Write a sweep's picture: each member's final loss against its degree when the sweep
    has several (one line per learning rate and seed), else against its learning rate (one
    line per seed), or against its seed when the sweep has one learning rate. Failed members
    are crosses along the top; members still running are left out. Returns the path."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(8.0, 4.5), dpi=DPI)
    members = sweep.members
    by_degree = len({m.degree for m in members}) > 1
    by_rate = not by_degree and len({m.learning_rate for m in members}) > 1
    seeds = sorted({m.seed for m in members}, key=str)

    def where(member: SweepMember) -> float:
        if by_degree:
            return member.degree
        return member.learning_rate if by_rate else seeds.index(member.seed)

    done = [m for m in members if m.state == JobState.SUCCEEDED and m.final_loss is not None]
    if by_degree:
        series = sorted({(m.learning_rate, m.seed) for m in members}, key=str)
        for i, (rate, seed) in enumerate(series):
            line = sorted((m.degree, m.final_loss) for m in done
                          if (m.learning_rate, m.seed) == (rate, seed))
            label = (f"lr {rate:g}, seed {seed}" if len(series) > 1 and i < MAX_SEED_LINES
                     and rate is not None else None)
            if line:
                axes.plot(*zip(*line, strict=True), marker="o", markersize=4, alpha=0.8,
                          color=f"C{i % 10}", label=label)
        axes.set_xticks(sorted({m.degree for m in members}))
        axes.set_xlabel("degree")
    elif by_rate:
        for i, seed in enumerate(seeds):
            line = sorted((m.learning_rate, m.final_loss) for m in done if m.seed == seed)
            if line:
                label = f"seed {seed}" if i < MAX_SEED_LINES else None
                axes.plot(*zip(*line, strict=True), marker="o", markersize=4, alpha=0.8,
                          color=f"C{i % 10}" if len(seeds) <= MAX_SEED_LINES else "C0",
                          label=label)
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
    else:
        axes.plot([where(m) for m in done], [m.final_loss for m in done], "o", color="C0",
                  label="final loss")
        axes.set_xticks(range(len(seeds)), [str(s) for s in seeds],
                        rotation=90 if len(seeds) > 8 else 0, fontsize="small")
        axes.set_xlabel(f"seed (learning rate {members[0].learning_rate:g})")
    losses = [m.final_loss for m in done]
    if losses and min(losses) > 0 and max(losses) > 10 * min(losses):
        axes.set_yscale("log")
    failed = [m for m in members if m.state in (JobState.FAILED, JobState.CANCELLED)]
    if failed:
        axes.plot([where(m) for m in failed], [0.97] * len(failed), "x", color="C3",
                  transform=axes.get_xaxis_transform(), label="failed or cancelled")
    best = sweep.best
    if best is not None:
        settings = ", ".join(f"{name} {value:g}" for name, value in (
            ("degree", best.degree), ("lr", best.learning_rate), ("seed", best.seed))
            if value is not None)
        axes.plot([where(best)], [best.final_loss], "*", color="gold", markersize=16,
                  markeredgecolor="black", label=f"best: {settings}, loss {best.final_loss:.4g}")
    axes.set_ylabel("final loss (sum of squares)")
    counts = sweep.counts()
    finished = len(members) - counts["queued"] - counts["running"]
    axes.set_title(f"sweep {sweep.sweep_id}: {sweep.request['base']['approach']}, "
                   f"{finished} of {len(members)} members finished", fontsize=10)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="best", fontsize="small")
    return save(plt, figure, path)
