"""How the CLI shows jobs to people: result summaries, job tables, and live progress."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from models import JobRecord


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
    coefficients = Table("coefficient", "initial", "final", box=None)
    for name, value in result.coefficients.items():
        start = result.initial_coefficients.get(name)
        coefficients.add_row(name, "" if start is None else f"{start:.6g}", f"{value:.6g}")
    console.print(coefficients)
    optimum = "n/a" if result.optimum_loss is None else f"{result.optimum_loss:.6g}"
    console.print(f"final loss {result.final_loss:.6g}  (least-squares optimum {optimum})")
    console.print(f"{result.steps_run} steps in {result.fit_seconds:.3f} s, seed {request['seed']}")
    if result.loss_history:
        history = Table("step", "loss", box=None)
        for step, loss in result.loss_history:
            history.add_row(str(step), f"{loss:.6g}")
        console.print(history)


def show_status(record: JobRecord, console: Console) -> None:
    line = f"{record.job_id} {record.state.value} ({record.request['approach']})"
    if record.progress:
        p = record.progress
        line += f" step {p.step + 1}/{p.steps} loss {p.loss:.6g}"
    if record.worker:
        line += f" on {record.device or '?'} by {record.worker}"
    if record.error:
        line += f" — {record.error.type}: {record.error.message}"
    console.print(line, highlight=False)


def show_list(records: list[JobRecord], console: Console) -> None:
    table = Table("id", "approach", "state", "device", "final loss", "fit s", "submitted")
    for r in records:
        result = r.result
        doc = r.to_document()
        table.add_row(r.job_id, r.request["approach"], r.state.value, r.device or "",
                      f"{result.final_loss:.6g}" if result else "",
                      f"{result.fit_seconds:.3f}" if result else "",
                      (doc["submitted_at"] or "")[:19].replace("T", " "))
    console.print(table)


class ProgressView:
    """A live bar on a terminal; plain lines at the recorded steps elsewhere."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True)
        self.bar: Progress | None = None
        self.task = None
        self.last_step = -1
        self.started = time.monotonic()

    def __enter__(self) -> ProgressView:
        if not self.quiet and sys.stderr.isatty():
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.completed}/{task.total} steps {task.percentage:>3.0f}%"),
                TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
                TimeRemainingColumn(), console=self.console)
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()

    def update(self, record: JobRecord) -> None:
        if self.quiet:
            return
        steps = record.request.get("steps") or 0
        done = steps if record.state.value == "succeeded" else (
            record.progress.step + 1 if record.progress else 0)
        loss = f"{record.progress.loss:.6g}" if record.progress else "-"
        where = f"{record.request['approach']} {record.state.value}"
        if record.worker:
            where += f" on {record.device or '?'} ({record.worker})"
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task(where, total=steps or 1, loss=loss)
            self.bar.update(self.task, completed=done, description=where, loss=loss)
        elif done != self.last_step and record.progress:
            self.console.print(f"{record.job_id} step {done}/{steps} loss {loss} "
                               f"({time.monotonic() - self.started:.1f} s)", highlight=False)
        self.last_step = done
