"""``polyfit-client``: submit fits, follow them, fetch results. It exits with an
``ExitStatus`` (client/status.py); errors are one line on stderr.
"""

from __future__ import annotations

import csv
import sys
from typing import Any

import click
from pydantic import ValidationError

from polyfit.client.api import PolyfitClient
from polyfit.client.data import read_points
from polyfit.client.errors import InvalidRequest, JobFailed, JobNotFound, PolyfitError
from polyfit.client.options import (
    OUT,
    build_request,
    duration,
    print_json,
    request_options,
    seconds,
    waiting,
)
from polyfit.client.plot import draw_fit, draw_sweep
from polyfit.client.render import ProgressView, show_list, show_result, show_status
from polyfit.client.status import ExitStatus
from polyfit.client.sweep_cli import sweep, sweep_cancel, sweep_delete, sweep_result
from polyfit.models import APPROACHES, JobRecord, JobState
from polyfit.models.job import FINISHED_STATES
from polyfit.models.request import describe
from polyfit.models.sweep import SweepRecord


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
@click.argument("job_ids", metavar="JOB_ID...", nargs=-1, required=True)
@click.pass_obj
def delete(client: PolyfitClient, job_ids: tuple[str, ...]) -> None:
    """Delete jobs and their results, whatever their state: a running job is stopped first
    (exit 3 if an id is unknown; the others are deleted)."""
    states = client.delete(list(job_ids))
    missing = [job_id for job_id, state in states.items() if state == "missing"]
    for job_id, state in states.items():
        if state != "missing":
            click.echo(f"{job_id}: deleted ({'stopped, ' * (state == 'running')}was {state})")
    if missing:
        others = len(states) - len(missing)
        raise JobNotFound(f"job{'s' * (len(missing) > 1)} {' '.join(missing)} not found"
                          + (f" ({others} others deleted)" if others else ""))


@cli.command()
@click.option("--older-than", "older_than", type=duration, required=True,
              help="Age since submission, e.g. 7d, 12h, 30m.")
@click.option("--state", type=click.Choice(FINISHED_STATES),
              help="Only jobs that ended this way.  [default: any finished state]")
@click.pass_obj
def prune(client: PolyfitClient, older_than: float, state: str | None) -> None:
    """Delete finished jobs submitted longer ago than --older-than; prints how many."""
    click.echo(f"deleted {client.prune(older_than, state)} job(s)")


@cli.command()
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The PNG file to write.  [default: JOB_ID.png]")
@click.pass_obj
def plot(client: PolyfitClient, job_id: str, output: str | None) -> None:
    """Draw a finished job's fit and loss history, or a sweep's final loss against learning
    rate or seed, as a PNG; prints the file's path. JOB_ID may be a sweep id."""
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


for command in (sweep, sweep_result, sweep_cancel, sweep_delete):
    cli.add_command(command)


def main() -> None:
    """Entry point: one-line errors with the documented exit codes, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx else "polyfit-client"
        click.echo(f"error: {error.format_message()} (see `{command} --help`)", err=True)
        sys.exit(ExitStatus.INVALID_REQUEST)
    except click.ClickException as error:
        click.echo(f"error: {error.format_message()}", err=True)
        sys.exit(ExitStatus.INVALID_REQUEST)
    except JobNotFound as error:
        click.echo(f"error: {error} — {error.hint}", err=True)
        sys.exit(error.exit_status)
    except PolyfitError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(error.exit_status)


