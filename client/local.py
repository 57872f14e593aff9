"""``polyfit-local``: polyfit on one machine with no Docker and no Redis installed.

``run`` starts an embedded Redis and a worker, submits one fit, prints the result and stops
both. ``up`` starts them and leaves them running (for trying ``polyfit-client`` by hand);
``down`` stops them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from client.api import PolyfitClient
from client.cli import OUT
from client.embedded import EmbeddedRedis
from client.errors import PolyfitError
from client.render import ProgressView, show_result
from models import APPROACHES, FitRequest

STATE_DIR = Path(".polyfit")


def worker_command(concurrency: int = 1) -> list[str]:
    """``polyfit-worker`` from this environment."""
    beside = Path(sys.executable).parent / "polyfit-worker"
    program = str(beside) if beside.exists() else shutil.which("polyfit-worker")
    if program is None:
        raise click.ClickException("polyfit-worker is not installed: pip install 'polyfit[worker]'")
    return [program, "--queues", "cpu", "--concurrency", str(concurrency), "--loglevel", "WARNING"]


def start_worker(redis_url: str, log_path: Path, concurrency: int = 1,
                 detach: bool = False) -> subprocess.Popen:
    env = {**os.environ, "POLYFIT_REDIS_URL": redis_url}
    log = open(log_path, "ab")
    return subprocess.Popen(worker_command(concurrency), env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_process_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM a worker's process group (Celery's warm shutdown), SIGKILL if it lingers."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """polyfit on this machine: an embedded Redis and a worker."""


@main.command()
@click.option("--approach", type=click.Choice(APPROACHES), default="legendre", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def run(approach: str, as_json: bool) -> None:
    """Start Redis and a worker, run one fit through them, print it, stop them."""
    with EmbeddedRedis() as server:
        worker = start_worker(server.url, server.directory / "worker.log")
        try:
            client = PolyfitClient(server.url)
            job_id = client.submit(FitRequest(approach=approach))
            Console(stderr=True).print(f"submitted {approach} job {job_id} to {server.url}")
            with ProgressView(quiet=as_json) as view:
                record = client.wait(job_id, timeout=600, on_update=view.update)
            if as_json:
                click.echo(json.dumps(record.to_document(), indent=2))
            else:
                show_result(record, OUT)
        except PolyfitError as error:
            click.echo(f"error: {error} (worker log: {server.directory / 'worker.log'})", err=True)
            sys.exit(error.exit_code)
        finally:
            if worker.poll() is None:
                stop_process_group(worker.pid)


@main.command()
@click.option("--port", type=int, default=6390, show_default=True)
@click.option("--concurrency", type=int, default=1, show_default=True)
def up(port: int, concurrency: int) -> None:
    """Start Redis (append-only, in ./.polyfit) and a worker, and leave them running."""
    STATE_DIR.mkdir(exist_ok=True)
    pids = STATE_DIR / "pids.json"
    if pids.exists():
        raise click.ClickException(f"already up ({pids}); run `polyfit-local down` first")
    server = EmbeddedRedis(port=port, directory=STATE_DIR.resolve(), appendonly=True)
    server.start(detach=True)
    worker = start_worker(server.url, STATE_DIR / "worker.log", concurrency, detach=True)
    pids.write_text(json.dumps({"redis": server.process.pid, "worker": worker.pid,
                                "url": server.url}))
    click.echo(f"export POLYFIT_REDIS_URL={server.url}")
    click.echo(f"# Redis and a worker are running (logs in {STATE_DIR}/); "
               "stop them with `polyfit-local down`", err=True)


@main.command()
def down() -> None:
    """Stop what `up` started."""
    pids = STATE_DIR / "pids.json"
    if not pids.exists():
        click.echo("nothing is up", err=True)
        return
    started = json.loads(pids.read_text())
    stop_process_group(started["worker"])
    stop_process_group(started["redis"])
    pids.unlink()
    click.echo("stopped", err=True)
