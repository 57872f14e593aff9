"""How the CLI shows jobs to people: result summaries, job tables, and live progress."""

from __future__ import annotations

import sys
import time

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table

from polyfit.models import JobRecord, JobState
from polyfit.models.job import thinned
from polyfit.models.statistics import FitStatistics

HISTORY_ROWS = 20  # longer loss histories are shown thinned; --csv writes them whole
WIDE = 100  # narrower terminals get the worker and device on a line above the bar


def show_result(record: JobRecord, console: Console) -> None:
    """Formula, coefficients, final loss against the optimum, timings and loss history."""
    request, result = record.request, record.result
    where = f"on {record.device or '?'} by {record.worker or '?'}"
    console.print(f"job {record.job_id} {record.state.value}: {request['approach']} {where}")
    if result is None:
        if record.error:
            console.print(f"error: {record.error.type}: {record.error.message}")
        return
    console.print(f"Result: {result.formula}")
    statistics = result.statistics
    errors = statistics.standard_errors if statistics else None
    intervals = statistics.confidence_intervals if statistics else None
    coefficients = Table("coefficient", "initial", "final", box=None)
    if errors and intervals:
        coefficients.add_column("standard error")
        coefficients.add_column("95 % confidence interval")
    for name, value in result.coefficients.items():
        start = result.initial_coefficients.get(name)
        row = [name, "" if start is None else f"{start:.6g}", f"{value:.6g}"]
        if errors and intervals:
            low, high = intervals[name]
            row += [f"{errors[name]:.3g}", f"[{low:.6g}, {high:.6g}]"]
        coefficients.add_row(*row)
    console.print(coefficients)
    versus = against_optimum(result.final_loss, result.optimum_loss)
    console.print(f"final loss {result.final_loss:.6g}{versus}")
    if statistics is not None:
        show_statistics(statistics, console)
    console.print(f"{result.steps_run} steps, seed {request['seed']}; {timings(record)}")
    show_history(result.loss_history, console)


def show_statistics(statistics: FitStatistics, console: Console) -> None:
    """Goodness of fit and information criteria on one line; then whether the descent got
    to the optimum, and why any statistic is missing."""
    parts = [f"n {statistics.n_points}, p {statistics.n_coefficients}"]
    for label, value in (("R²", statistics.r_squared),
                         ("adjusted R²", statistics.adjusted_r_squared),
                         ("σ²", statistics.residual_variance), ("AIC", statistics.aic),
                         ("BIC", statistics.bic)):
        if value is not None:
            parts.append(f"{label} {value:.6g}")
    console.print("fit: " + ", ".join(parts))
    if statistics.weighted and statistics.reduced_chi_square is not None:
        scaled = ("σ absolute: the covariance is not scaled" if statistics.absolute_sigma else
                  "σ relative: the covariance is scaled by the reduced χ²")
        console.print(f"weighted by 1/σ²: χ² {statistics.chi_square:.6g}, reduced χ² "
                      f"{statistics.reduced_chi_square:.6g} ({scaled})")
    if statistics.converged is False:
        console.print(f"not converged: the loss is {statistics.gap_to_optimum:.3%} above the "
                      "optimum, so the uncertainties describe where the descent stopped, not "
                      "the best fit")
    for note in statistics.notes:
        console.print(f"note: {note}")


def against_optimum(loss: float, optimum: float | None) -> str:
    """``, 1.72 × the least-squares optimum 8.81717`` (or why there is none)."""
    if optimum is None:
        return "  (no least-squares optimum: the model is not a polynomial in x)"
    if optimum <= 0:
        return f"  (least-squares optimum {optimum:.6g})"
    return f", {loss / optimum:#.4g} × the least-squares optimum {optimum:.6g}"


def timings(record: JobRecord) -> str:
    """Seconds queued, fitting, and from submission to the result."""
    parts = []
    if record.started_at is not None:
        parts.append(f"queued {record.started_at - record.submitted_at:.3f} s")
    if record.result is not None:
        compiled = " (compiled)" if record.result.compiled else ""
        parts.append(f"fit {record.result.fit_seconds:.3f} s{compiled}")
    if record.finished_at is not None:
        parts.append(f"total {record.finished_at - record.submitted_at:.3f} s")
    return ", ".join(parts)


def show_history(history: list[tuple[int, float]], console: Console) -> None:
    """The recorded losses; at most HISTORY_ROWS of them, evenly spread, always the last."""
    if not history:
        return
    shown = thinned(history, HISTORY_ROWS)
    table = Table("step", "loss", box=None)
    for step, loss in shown:
        table.add_row(str(step), f"{loss:.6g}")
    console.print(table)
    if len(shown) < len(history):
        console.print(f"({len(shown)} of {len(history)} recorded steps; "
                      "write them all with `result JOB_ID --csv FILE`)")


def show_status(record: JobRecord, console: Console) -> None:
    """One line: the state and, by state, the progress, the final loss, or where it stopped."""
    line = f"{record.job_id} {record.state.value} ({record.request.get('approach', '?')})"
    if record.result is not None:
        line += f" after {record.result.steps_run} steps, final loss {record.result.final_loss:.6g}"
    elif record.progress:
        p = record.progress
        where = "last progress at step" if record.state.finished else "step"
        line += f" {where} {p.step + 1}/{p.steps} loss {p.loss:.6g}"
    if record.worker:
        line += f" on {record.device or '?'} by {record.worker}"
    if record.error:
        line += f" — {record.error.type}: {record.error.message}"
    console.print(line, highlight=False)


def show_list(records: list[JobRecord], console: Console) -> None:
    """A table of jobs; ids are never cut, and a table sent to a file is not wrapped."""
    if not records:
        console.print("no jobs match", style="dim")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=len(records[0].job_id))
    for header in ("approach", "state", "device", "final loss", "fit s", "submitted"):
        table.add_column(header)
    for r in records:
        result = r.result
        doc = r.to_document()
        table.add_row(r.job_id, r.request.get("approach", "?"), r.state.value, r.device or "",
                      f"{result.final_loss:.6g}" if result else "",
                      f"{result.fit_seconds:.3f}" if result else "",
                      (doc["submitted_at"] or "")[:19].replace("T", " "))
    if not console.is_terminal:
        unbounded = console.options.update_width(10_000)
        width = max(console.width, Measurement.get(console, unbounded, table).maximum)
        console = Console(file=console.file, width=width, highlight=False)
    console.print(table)


class ProgressView:
    """Follows a job for ``wait``: a live bar on a terminal, plain lines elsewhere.

    The bar shows step of steps, percent, loss, elapsed time, ETA, worker and device, and
    ends at 100 % when the job succeeds. Without a terminal each recorded step the client
    sees is one line on stderr, as is each change of state. A job left queued for
    ``QUEUED_HINT_AFTER`` seconds gets one line asking whether a worker serves its queue.
    """

    QUEUED_HINT_AFTER = 5.0

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.bar: Progress | None = None
        self.task = None
        self.last_step = -1
        self.state: JobState | None = None
        self.hinted = False
        self.announced = False
        self.started = time.monotonic()

    def __enter__(self) -> ProgressView:
        if not self.quiet and sys.stderr.isatty():
            self.bar = Progress(*self.columns(), console=self.console, expand=True)
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def columns(self) -> list[ProgressColumn]:
        """The bar's columns; the worker and device go last, on terminals wide enough."""
        fixed = Column(no_wrap=True)
        columns = [
            TextColumn("{task.description}", table_column=fixed),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=5)),
            TextColumn("{task.completed}/{task.total} steps {task.percentage:>3.0f}%",
                       table_column=fixed),
            TextColumn("loss {task.fields[loss]}", table_column=fixed),
            TimeElapsedColumn(table_column=fixed), TextColumn("ETA", table_column=fixed),
            TimeRemainingColumn(table_column=fixed)]
        if self.console.width >= WIDE:
            columns.append(TextColumn("{task.fields[where]}", table_column=Column(
                no_wrap=True, overflow="ellipsis")))
        return columns

    def update(self, record: JobRecord) -> None:
        """Show the job as it is now; called by ``PolyfitClient.wait`` on each change."""
        if self.quiet:
            return
        steps, done, loss = position(record)
        if self.bar is not None:
            self.draw(record, steps, done, loss)
        else:
            self.log(record, steps, done, loss)
        self.state, self.last_step = record.state, done
        self.hint_if_stuck(record)

    def draw(self, record: JobRecord, steps: int, done: int, loss: str) -> None:
        description = f"{record.request['approach']} {record.state.value}"
        fields = {"loss": loss, "where": where(record).strip()}
        if self.console.width < WIDE and record.device and not self.announced:
            self.console.print(f"{record.job_id} {record.state.value}{where(record)}")
            self.announced = True
        if self.task is None:
            self.task = self.bar.add_task(description, total=steps, **fields)
        self.bar.update(self.task, total=steps, completed=done, description=description,
                        **fields)

    def log(self, record: JobRecord, steps: int, done: int, loss: str) -> None:
        elapsed = f"({time.monotonic() - self.started:.1f} s)"
        if record.state != self.state:
            self.console.print(f"{record.job_id} {record.state.value}{where(record)} {elapsed}")
        if record.state == JobState.RUNNING and record.progress and done != self.last_step:
            self.console.print(f"{record.job_id} step {done}/{steps} loss {loss} {elapsed}")

    def hint_if_stuck(self, record: JobRecord) -> None:
        waited = time.monotonic() - self.started
        if record.state != JobState.QUEUED or self.hinted or waited < self.QUEUED_HINT_AFTER:
            return
        self.hinted = True
        self.console.print(
            f"{record.job_id} is still queued on '{record.queue}' after {waited:.0f} s — is a "
            f"worker serving that queue? Start one with `polyfit-worker --queues {record.queue}`")


def position(record: JobRecord) -> tuple[int, int, str]:
    """Steps in all, steps done and the loss to show; a succeeded job is at its last step."""
    progress, result = record.progress, record.result
    steps = (progress.steps if progress else record.request.get("steps")) or 1
    if result is not None:
        return steps, steps, f"{result.final_loss:.6g}"
    if progress is not None:
        return steps, progress.step + 1, f"{progress.loss:.6g}"
    return steps, 0, "-"


def where(record: JobRecord) -> str:
    """`` on cpu (celery@host)`` once a worker has the job, else nothing."""
    if not record.worker:
        return ""
    return f" on {record.device} ({record.worker})" if record.device else f" ({record.worker})"
