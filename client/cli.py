"""``polyfit-client``: submit fits, follow them, fetch results. Exit codes:

0 done, 1 job failed or cancelled, 2 invalid request or usage, 3 job not found,
4 Redis unreachable, 5 wait timed out. Errors are one line on stderr.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console

from client.api import PolyfitClient
from client.data import read_points
from client.errors import InvalidRequest, JobFailed, JobNotFound, PolyfitError
from client.render import ProgressView, show_list, show_result, show_status
from client.sweep_view import SweepProgress, show_sweep
from models import APPROACHES, FitRequest, JobRecord, JobState
from models.request import describe
from models.sweep import MAX_MEMBERS, SweepRecord, SweepRequest

OUT = Console(highlight=False, soft_wrap=True)


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2))


def seconds(text: str) -> float:
    """A ``--timeout``: a positive number of seconds."""
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{text!r} is not a positive number of seconds")
    return value


def build_request(request_file: str | None, options: dict[str, Any]) -> FitRequest:
    """The request from ``--request FILE`` (if any), overridden by the options given."""
    fields: dict[str, Any] = {}
    if request_file:
        try:
            fields = json.loads(Path(request_file).read_text())
        except OSError as error:
            raise InvalidRequest(f"request: cannot read {request_file}: {error.strerror}") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidRequest(f"request: {request_file} is not valid JSON ({error})") from None
        if not isinstance(fields, dict):
            raise InvalidRequest(f"request: {request_file} must hold a JSON object")
    fields.update({name: value for name, value in options.items() if value is not None})
    if "approach" not in fields:
        raise InvalidRequest("approach: missing; give --approach NAME or --request FILE")
    try:
        return FitRequest.model_validate(fields)
    except ValidationError as error:
        raise InvalidRequest(describe(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--redis-url", envvar="POLYFIT_REDIS_URL", default="redis://localhost:6379/0",
              show_default=True, help="Redis holding the queue and job records "
              "(env POLYFIT_REDIS_URL).")
@click.pass_context
def cli(ctx: click.Context, redis_url: str) -> None:
    """Submit curve fits to polyfit workers and fetch their results."""
    try:
        ctx.obj = PolyfitClient(redis_url)
    except ValidationError as error:  # a POLYFIT_* setting out of range
        raise InvalidRequest(f"settings: {describe(error)}") from None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--redis-url") from None


@contextmanager
def waiting(what: str, follow: str, stop: str,
            document: Callable[[], dict[str, Any]] | None) -> Iterator[None]:
    """Around a wait: should it fail, print the record as it is (``document``, with --json)
    first; on Ctrl-C say that ``what`` goes on, how to ``follow`` it and ``stop`` it, exit 130."""
    try:
        yield
    except PolyfitError:
        if document:
            print_json(document())
        raise
    except KeyboardInterrupt:
        click.echo(f"stopped waiting; {what} goes on — {follow} or stop it with `{stop}`",
                   err=True)
        sys.exit(130)


def finish(client: PolyfitClient, job_id: str, as_json: bool, quiet: bool,
           timeout: float | None) -> None:
    """Wait for a job with a progress view, then print its result."""
    document = (lambda: client.status(job_id).to_document()) if as_json else None
    with waiting(f"job {job_id}", f"follow it again with `polyfit-client wait {job_id}`",
                 f"polyfit-client cancel {job_id}", document), ProgressView(quiet) as view:
        record = client.wait(job_id, timeout, on_update=view.update)
    if as_json:
        print_json(record.to_document())
    elif quiet:
        click.echo(record.result.formula)
    else:
        show_result(record, OUT)


def request_options(command: Callable) -> Callable:
    """The FitRequest options that submit and sweep share."""
    options = [
        click.option("--device", type=click.Choice(["cpu", "cuda", "auto"])),
        click.option("--degree", type=int),
        click.option("--target", type=click.Choice(["sin", "cos", "exp", "tanh"])),
        click.option("--optimizer", type=click.Choice(["sgd", "rmsprop", "adam"])),
        click.option("--dtype", type=click.Choice(["float32", "float64"])),
        click.option("--data", "data_file", type=click.Path(dir_okay=False),
                     help="CSV of x,y points to fit instead of a target."),
        click.option("--n-points", type=int),
        click.option("--x-min", type=float),
        click.option("--x-max", type=float),
        click.option("--record-every", type=int),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@click.option("--approach", type=click.Choice(APPROACHES), help="How to fit.")
@click.option("--steps", type=int, help="Gradient steps.")
@click.option("--learning-rate", type=float)
@click.option("--seed", type=int, help="Makes the random start reproducible.")
@request_options
@click.option("--request", "request_file", type=click.Path(dir_okay=False),
              help="A JSON FitRequest; options given override its fields.")
@click.option("--wait", "wait_", is_flag=True, help="Wait and print the result.")
@click.option("--timeout", type=seconds, help="With --wait: give up after S seconds (exit 5).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress; only the id or result.")
@click.pass_obj
def submit(client: PolyfitClient, data_file: str | None, request_file: str | None, wait_: bool,
           timeout: float | None, as_json: bool, quiet: bool, **options: Any) -> None:
    """Queue a fit; prints the job id (or, with --wait, the result)."""
    if timeout is not None and not wait_:
        raise click.UsageError("--timeout applies to --wait; add --wait")
    if data_file:
        options["data"] = read_points(data_file, client.settings)
    request = build_request(request_file, options)
    job_id = client.submit(request)
    if wait_:
        if not (as_json or quiet):
            click.echo(job_id, err=True)
        finish(client, job_id, as_json, quiet, timeout)
    elif as_json:
        print_json(client.status(job_id).to_document())
    else:
        click.echo(job_id)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(client: PolyfitClient, job_id: str, as_json: bool) -> None:
    """Show a job's state and progress."""
    record = client.status(job_id)
    print_json(record.to_document()) if as_json else show_status(record, OUT)


@cli.command()
@click.argument("job_id")
@click.option("--timeout", type=seconds, help="Give up after S seconds (exit 5).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", "-q", is_flag=True)
@click.pass_obj
def wait(client: PolyfitClient, job_id: str, timeout: float | None, as_json: bool,
         quiet: bool) -> None:
    """Wait for a job to finish, showing progress, then print its result."""
    finish(client, job_id, as_json, quiet, timeout)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False),
              help="Also write the loss history (step,loss) to this CSV file.")
@click.pass_obj
def result(client: PolyfitClient, job_id: str, as_json: bool, csv_file: str | None) -> None:
    """Print a finished job's result (exit 1 if it failed)."""
    record = client.status(job_id)
    if csv_file:
        write_history(record, csv_file)
    if as_json:
        print_json(record.to_document())
    else:
        show_result(record, OUT)
    if record.state != JobState.SUCCEEDED:
        client.result(job_id)  # raises the job's failure, or "not finished"


def write_history(record: JobRecord, path: str) -> None:
    """The loss history (the partial one of a failed job) as ``step,loss`` rows."""
    try:
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["step", "loss"])
            writer.writerows(record.to_document()["loss_history"])
    except OSError as error:
        raise InvalidRequest(f"csv: cannot write {path}: {error.strerror or error}") from None


@cli.command(name="list")
@click.option("--state", type=click.Choice([s.value for s in JobState]))
@click.option("--approach", type=click.Choice(APPROACHES))
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_(client: PolyfitClient, state: str | None, approach: str | None, limit: int,
          as_json: bool) -> None:
    """List jobs, newest first."""
    records = client.list(state, approach, limit)
    if as_json:
        print_json([r.to_document() for r in records])
    else:
        show_list(records, OUT)


@cli.command()
@click.argument("job_id")
@click.pass_obj
def cancel(client: PolyfitClient, job_id: str) -> None:
    """Cancel a queued job, or stop a running one between steps."""
    outcome = client.cancel(job_id)
    messages = {"cancelled": "cancelled before it ran", "requested": "stopping (it is running)"}
    click.echo(f"{job_id}: {messages.get(outcome, f'{outcome}; nothing to cancel')}")


@cli.command()
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The PNG file to write.  [default: JOB_ID.png]")
@click.pass_obj
def plot(client: PolyfitClient, job_id: str, output: str | None) -> None:
    """Draw a finished job's fit and loss history, or a sweep's final loss against learning
    rate or seed, as a PNG; prints the file's path. JOB_ID may be a sweep id."""
    from client.plot import draw_fit, draw_sweep  # here: NumPy slows every command's start

    path = output or f"{job_id}.png"
    try:
        record = client.status(job_id)
    except JobNotFound:
        click.echo(draw_sweep(sweep_to_plot(client, job_id), path))
        return
    if record.result is None:
        client.result(job_id)  # raises the job's failure, or "not finished"
    click.echo(draw_fit(record, path))


def sweep_to_plot(client: PolyfitClient, sweep_id: str) -> SweepRecord:
    """The sweep with this id, once some member has finished."""
    try:
        sweep = client.sweep_result(sweep_id)
    except JobNotFound:
        raise JobNotFound(f"no job or sweep {sweep_id}") from None
    if all(not m.state.finished for m in sweep.members):
        raise JobFailed(f"sweep {sweep_id} has no finished member yet; wait for it with "
                        f"`polyfit-client sweep-result --wait {sweep_id}`")
    return sweep


def main() -> None:
    """Entry point: one-line errors with the documented exit codes, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx else "polyfit-client"
        click.echo(f"error: {error.format_message()} (see `{command} --help`)", err=True)
        sys.exit(InvalidRequest.exit_code)
    except click.ClickException as error:
        click.echo(f"error: {error.format_message()}", err=True)
        sys.exit(InvalidRequest.exit_code)
    except JobNotFound as error:
        click.echo(f"error: {error} — {error.hint}", err=True)
        sys.exit(error.exit_code)
    except PolyfitError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)


# --- sweeps ---


def parse_learning_rates(ctx: click.Context, param: click.Parameter,
                         value: str | None) -> list[float] | None:
    """``1e-6,3e-6,1e-5`` → [1e-06, 3e-06, 1e-05]."""
    if value is None:
        return None
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None


def parse_seeds(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """``0-63`` or ``1,5,10-12`` → the seeds, in order."""
    if value is None:
        return None
    spans: list[range] = []
    try:
        for part in filter(None, (p.strip() for p in value.split(","))):
            first, dash, last = part.partition("-")
            spans.append(range(int(first), int(last) + 1) if dash else range(int(first),
                                                                              int(first) + 1))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of seeds like 0-63 or 1,5,7") from None
    if not spans:
        raise click.BadParameter(f"{value!r} names no seed")
    if empty := next((str(s.start) + "-" + str(s.stop - 1) for s in spans if not s), None):
        raise click.BadParameter(f"{empty} is an empty range (its first seed is above its last)")
    if (count := sum(map(len, spans))) > MAX_MEMBERS:  # counted before any list is made
        raise click.BadParameter(f"{value} gives {count} seeds, more than the limit "
                                 f"{MAX_MEMBERS} members")
    return [seed for span in spans for seed in span]


def build_sweep(base: FitRequest, learning_rates: list[float] | None,
                seeds: list[int] | None) -> SweepRequest:
    try:
        return SweepRequest(base=base, learning_rates=learning_rates, seeds=seeds)
    except ValidationError as error:
        raise InvalidRequest(describe(error)) from None


def finish_sweep(client: PolyfitClient, sweep_id: str, as_json: bool, quiet: bool,
                 timeout: float | None, limit: int | None) -> None:
    """Wait for a sweep with progress lines, print it, exit 1 unless a member succeeded."""
    document = (lambda: client.sweep_result(sweep_id).to_document()) if as_json else None
    with waiting(f"sweep {sweep_id}",
                 f"follow it with `polyfit-client sweep-result --wait {sweep_id}`",
                 f"polyfit-client sweep-cancel {sweep_id}", document):
        record = client.wait_sweep(sweep_id, timeout, on_update=SweepProgress(sweep_id, quiet))
    show_sweep_record(record, as_json, quiet, limit)


def show_sweep_record(record: SweepRecord, as_json: bool, quiet: bool,
                      limit: int | None) -> None:
    if as_json:
        print_json(record.to_document())
    elif quiet:
        click.echo(record.best.job_id if record.best else "")
    else:
        show_sweep(record, OUT, limit)
    if record.state.finished and record.state != JobState.SUCCEEDED:
        raise JobFailed(f"sweep {record.sweep_id} {record.state.value}: no member succeeded")


@cli.command()
@click.option("--approach", type=click.Choice([a for a in APPROACHES if a != "exact"]),
              help="How to fit.")
@click.option("--learning-rate", "learning_rates", callback=parse_learning_rates,
              help="Comma-separated learning rates, e.g. 1e-6,3e-6,1e-5.")
@click.option("--seeds", callback=parse_seeds, help="Seeds, e.g. 0-63 or 1,5,7.")
@click.option("--steps", type=int, help="Gradient steps.")
@request_options
@click.option("--request", "request_file", type=click.Path(dir_okay=False),
              help="A JSON FitRequest as the base; options given override its fields.")
@click.option("--wait", "wait_", is_flag=True, help="Wait and print the members, best first.")
@click.option("--timeout", type=seconds, help="With --wait: give up after S seconds (exit 5).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="With --wait: member rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress; only the sweep id (or, with "
              "--wait, the best member's job id).")
@click.pass_obj
def sweep(client: PolyfitClient, learning_rates: list[float] | None, seeds: list[int] | None,
          data_file: str | None, request_file: str | None, wait_: bool, timeout: float | None,
          limit: int, as_json: bool, quiet: bool, **options: Any) -> None:
    """Fit every learning rate × seed as one batched job; prints the sweep id.

    Each member is also a job of its own (`polyfit-client result MEMBER_ID`)."""
    if timeout is not None and not wait_:
        raise click.UsageError("--timeout applies to --wait; add --wait")
    if data_file:
        options["data"] = read_points(data_file, client.settings)
    sweep_request = build_sweep(build_request(request_file, options), learning_rates, seeds)
    sweep_id = client.sweep(sweep_request)
    if wait_:
        if not (as_json or quiet):
            click.echo(sweep_id, err=True)
        finish_sweep(client, sweep_id, as_json, quiet, timeout, limit)
    elif as_json:
        print_json(client.sweep_result(sweep_id).to_document())
    else:
        click.echo(sweep_id)


@cli.command(name="sweep-result")
@click.argument("sweep_id")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the sweep to finish first.")
@click.option("--timeout", type=seconds, help="With --wait: give up after S seconds (exit 5).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Member rows to show (default all).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="Only the best member's job id.")
@click.pass_obj
def sweep_result(client: PolyfitClient, sweep_id: str, wait_: bool, timeout: float | None,
                 limit: int | None, as_json: bool, quiet: bool) -> None:
    """Show a sweep's members, best final loss first (exit 1 if none succeeded)."""
    if wait_:
        finish_sweep(client, sweep_id, as_json, quiet, timeout, limit)
    else:
        show_sweep_record(client.sweep_result(sweep_id), as_json, quiet, limit)


@cli.command(name="sweep-cancel")
@click.argument("sweep_id")
@click.pass_obj
def sweep_cancel(client: PolyfitClient, sweep_id: str) -> None:
    """Cancel every member of a sweep: queued ones at once, running ones between steps."""
    outcomes = client.cancel_sweep(sweep_id)
    click.echo(f"{sweep_id}: " + ", ".join(f"{n} {outcome}" for outcome, n in outcomes.items()))
