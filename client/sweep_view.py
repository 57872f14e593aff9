"""How the CLI shows sweeps: the member table best first, and progress while waiting."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.table import Table

from polyfit.models.sweep import Criterion, SweepRecord


def show_sweep(record: SweepRecord, console: Console, limit: int | None = None,
               by: Criterion = "final_loss") -> None:
    """The sweep's state and counts, then its members best first by ``by`` (``limit`` rows)."""
    request = record.request["base"]
    counts = ", ".join(f"{n} {state}" for state, n in record.counts().items() if n)
    where = f" on {record.device} by {record.worker}" if record.worker else ""
    console.print(f"sweep {record.sweep_id} {record.state.value}: {len(record.members)} members "
                  f"of {request['approach']}{where} ({counts})")
    if record.fit_seconds is not None:
        console.print(f"batch ran {record.fit_seconds:.3f} s")
    best = record.best
    if best is not None:
        ranked = "" if by == "final_loss" else f", {by} {getattr(best, by):.6g}"
        console.print(f"best by {by.replace('_', ' ')}: degree {best.degree}, learning_rate "
                      f"{_number(best.learning_rate)}, seed {_number(best.seed)}, final loss "
                      f"{best.final_loss:.6g}{ranked} (job {best.job_id})")
    table = Table(box=None)
    id_width = max((len(member.job_id) for member in record.members), default=0)
    columns = ("#", "job id", "degree", "lr", "seed", "state", "final loss", "aic", "bic")
    for name in columns:  # ids whole, to copy
        table.add_column(name, no_wrap=True, min_width=id_width if name == "job id" else None)
    table.add_column("error", overflow="fold")
    shown = record.members if limit is None else record.members[:limit]
    for rank, member in enumerate(shown, 1):
        error = f"{member.error.type}: {member.error.message}" if member.error else ""
        table.add_row(str(rank), member.job_id, str(member.degree),
                      _number(member.learning_rate), _number(member.seed), member.state.value,
                      _number(member.final_loss, ".6g"), _number(member.aic, ".1f"),
                      _number(member.bic, ".1f"), error)
    console.print(table)
    if len(shown) < len(record.members):
        console.print(f"… {len(record.members) - len(shown)} more (--limit, or --json for all)")


def _number(value: float | None, style: str = "g") -> str:
    return "-" if value is None else format(value, style)


class SweepProgress:
    """One line on stderr whenever the counts or the batch's step change."""

    def __init__(self, sweep_id: str, quiet: bool = False) -> None:
        self.sweep_id, self.quiet = sweep_id, quiet
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.last = ""
        self.started = time.monotonic()

    def __call__(self, counts: dict[str, int], progress: dict | None) -> None:
        if self.quiet:
            return
        done = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        line = f"sweep {self.sweep_id}: {done}"
        if progress and (counts.get("running") or counts.get("queued")):  # not once all ended
            best = progress.get("best_loss")
            line += f"; step {progress['step'] + 1}/{progress['steps']}"
            if best is not None:
                line += f", best loss {best:.6g}"
        if line != self.last:
            self.last = line
            end = "\r" if sys.stderr.isatty() else "\n"
            self.console.print(f"{line} ({time.monotonic() - self.started:.1f} s)", end=end)
