"""``polyfit-client sweep``, ``sweep-result``, ``sweep-cancel`` and ``sweep-delete``: many
degrees × learning rates × seeds as one batched job, its members ranked best first."""

from __future__ import annotations

from typing import Any, get_args

import click
from pydantic import ValidationError

from polyfit.client.api import PolyfitClient
from polyfit.client.data import read_points
from polyfit.client.errors import InvalidRequest, JobFailed
from polyfit.client.options import OUT, build_request, print_json, request_options, seconds, waiting
from polyfit.client.sweep_view import SweepProgress, show_sweep
from polyfit.models import APPROACHES, FitRequest, JobState
from polyfit.models.request import describe
from polyfit.models.sweep import MAX_MEMBERS, Criterion, SweepRecord, SweepRequest


def parse_learning_rates(ctx: click.Context, param: click.Parameter,
                         value: str | None) -> list[float] | None:
    """``1e-6,3e-6,1e-5`` → [1e-06, 3e-06, 1e-05]."""
    if value is None:
        return None
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None


def parse_integers(ctx: click.Context, param: click.Parameter,
                   value: str | None) -> list[int] | None:
    """``0-63`` or ``1,5,10-12`` → the integers, in order (seeds, degrees)."""
    if value is None:
        return None
    noun = param.name or "values"
    spans: list[range] = []
    try:
        for part in filter(None, (p.strip() for p in value.split(","))):
            first, dash, last = part.partition("-")
            spans.append(range(int(first), int(last) + 1) if dash else range(int(first),
                                                                              int(first) + 1))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of {noun} like 0-63 or 1,5,7") from None
    if not spans:
        raise click.BadParameter(f"{value!r} names no {noun.removesuffix('s')}")
    if empty := next((str(s.start) + "-" + str(s.stop - 1) for s in spans if not s), None):
        raise click.BadParameter(f"{empty} is an empty range (its first value is above its last)")
    if (count := sum(map(len, spans))) > MAX_MEMBERS:  # counted before any list is made
        raise click.BadParameter(f"{value} gives {count} {noun}, more than the limit "
                                 f"{MAX_MEMBERS} members")
    return [number for span in spans for number in span]


def build_sweep(base: FitRequest, degrees: list[int] | None, learning_rates: list[float] | None,
                seeds: list[int] | None) -> SweepRequest:
    try:
        return SweepRequest(base=base, degrees=degrees, learning_rates=learning_rates,
                            seeds=seeds)
    except ValidationError as error:
        raise InvalidRequest(describe(error)) from None


def finish_sweep(client: PolyfitClient, sweep_id: str, as_json: bool, quiet: bool,
                 timeout: float | None, limit: int | None, by: Criterion) -> None:
    """Wait for a sweep with progress lines, print it, exit 1 unless a member succeeded."""
    document = (lambda: client.sweep_result(sweep_id).to_document()) if as_json else None
    with waiting(f"sweep {sweep_id}",
                 f"follow it with `polyfit-client sweep-result --wait {sweep_id}`",
                 f"polyfit-client sweep-cancel {sweep_id}", document):
        record = client.wait_sweep(sweep_id, timeout, on_update=SweepProgress(sweep_id, quiet))
    show_sweep_record(record, as_json, quiet, limit, by)


def show_sweep_record(record: SweepRecord, as_json: bool, quiet: bool, limit: int | None,
                      by: Criterion) -> None:
    record = record.ranked(by)
    if as_json:
        print_json(record.to_document())
    elif quiet:
        click.echo(record.best.job_id if record.best else "")
    else:
        show_sweep(record, OUT, limit, by)
    if record.state.finished and record.state != JobState.SUCCEEDED:
        raise JobFailed(f"sweep {record.sweep_id} {record.state.value}: no member succeeded")


RANKING = click.option("--by", type=click.Choice(get_args(Criterion)),
                       help="Rank members by final_loss (the default), or by aic or bic, "
                       "which charge each coefficient: to choose a degree.")


@click.command()
@click.option("--approach", type=click.Choice(APPROACHES), help="How to fit.")
@click.option("--degrees", callback=parse_integers,
              help="Degrees, e.g. 1-9 (exact sweeps degrees alone).")
@click.option("--learning-rates", "--learning-rate", "learning_rates",
              callback=parse_learning_rates,
              help="Comma-separated learning rates, e.g. 1e-6,3e-6,1e-5 (--learning-rate is "
                   "the same option).")
@click.option("--seeds", callback=parse_integers, help="Seeds, e.g. 0-63 or 1,5,7.")
@click.option("--steps", type=int, help="Gradient steps.")
@request_options
@click.option("--request", "request_file", type=click.Path(dir_okay=False),
              help="A JSON FitRequest as the base; options given override its fields.")
@click.option("--wait", "wait_", is_flag=True, help="Wait and print the members, best first.")
@click.option("--timeout", type=seconds, help="With --wait: give up after S seconds (exit 5).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="With --wait: member rows to show.")
@RANKING
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress; only the sweep id (or, with "
              "--wait, the best member's job id).")
@click.pass_obj
def sweep(client: PolyfitClient, degrees: list[int] | None, learning_rates: list[float] | None,
          seeds: list[int] | None, data_file: str | None, request_file: str | None,
          wait_: bool, timeout: float | None, limit: int, by: Criterion | None, as_json: bool,
          quiet: bool, **options: Any) -> None:
    """Fit every degree × learning rate × seed in one job; prints the sweep id.

    Each member is also a job of its own (`polyfit-client result MEMBER_ID`)."""
    for name, given in (("--timeout", timeout is not None), ("--by", by is not None)):
        if given and not wait_:
            raise click.UsageError(f"{name} applies to --wait; add --wait")
    if data_file:
        options["data"] = read_points(data_file, client.settings)
    sweep_request = build_sweep(build_request(request_file, options), degrees, learning_rates,
                                seeds)
    sweep_id = client.sweep(sweep_request)
    if wait_:
        if not (as_json or quiet):
            click.echo(sweep_id, err=True)
        finish_sweep(client, sweep_id, as_json, quiet, timeout, limit, by or "final_loss")
    elif as_json:
        print_json(client.sweep_result(sweep_id).to_document())
    else:
        click.echo(sweep_id)


@click.command(name="sweep-result")
@click.argument("sweep_id")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the sweep to finish first.")
@click.option("--timeout", type=seconds, help="With --wait: give up after S seconds (exit 5).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Member rows to show (default all).")
@RANKING
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="Only the best member's job id.")
@click.pass_obj
def sweep_result(client: PolyfitClient, sweep_id: str, wait_: bool, timeout: float | None,
                 limit: int | None, by: Criterion | None, as_json: bool, quiet: bool) -> None:
    """Show a sweep's members, best first (exit 1 if none succeeded)."""
    by = by or "final_loss"
    if wait_:
        finish_sweep(client, sweep_id, as_json, quiet, timeout, limit, by)
    else:
        show_sweep_record(client.sweep_result(sweep_id), as_json, quiet, limit, by)


@click.command(name="sweep-cancel")
@click.argument("sweep_id")
@click.pass_obj
def sweep_cancel(client: PolyfitClient, sweep_id: str) -> None:
    """Cancel every member of a sweep: queued ones at once, running ones between steps."""
    outcomes = client.cancel_sweep(sweep_id)
    click.echo(f"{sweep_id}: " + ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items()))


@click.command(name="sweep-delete")
@click.argument("sweep_id")
@click.pass_obj
def sweep_delete(client: PolyfitClient, sweep_id: str) -> None:
    """Delete a sweep and its members' jobs, whatever their state (running ones stop)."""
    click.echo(f"{sweep_id}: deleted with {client.delete_sweep(sweep_id)} member job(s)")
