"""``polyfit-local``: polyfit on one machine with no Docker and no Redis installed.

``run`` starts an embedded Redis and a worker, submits one fit, prints the result and stops
both. ``up`` starts them, and the HTTP API and dashboard where ``polyfit-api`` is installed,
and leaves them running (for trying ``polyfit-client`` or the dashboard by hand); ``down``
stops them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console

from polyfit.client.api import PolyfitClient
from polyfit.client.embedded import EmbeddedRedis
from polyfit.client.errors import JobFailed, PolyfitError
from polyfit.client.options import OUT
from polyfit.client.render import ProgressView, show_result
from polyfit.models import APPROACHES, FitRequest, JobRecord
from polyfit.models.request import describe

STATE_DIR = Path(".polyfit")


def installed(program: str) -> str | None:
    """``program`` from this environment, else from PATH."""
    beside = Path(sys.executable).parent / program
    return str(beside) if beside.exists() else shutil.which(program)


def worker_command(concurrency: int = 1) -> list[str]:
    """``polyfit-worker`` from this environment."""
    program = installed("polyfit-worker")
    if program is None:
        raise click.ClickException("polyfit-worker is not installed: pip install 'polyfit[worker]'")
    return [program, "--queues", "cpu", "--concurrency", str(concurrency), "--loglevel", "WARNING"]


def start_api(redis_url: str, port: int, log_path: Path) -> tuple[subprocess.Popen, str]:
    """``polyfit-api`` on 127.0.0.1:``port`` in a session of its own, answering once healthy,
    and how its token is found: POLYFIT_API_TOKENS when set, else a new token written to
    ``STATE_DIR/api-token`` (readable by this user only)."""
    env = {**os.environ, "POLYFIT_REDIS_URL": redis_url}
    if not env.get("POLYFIT_API_TOKENS"):
        token_file = STATE_DIR / "api-token"
        token_file.write_text(secrets.token_urlsafe(24) + "\n")
        token_file.chmod(0o600)
        env["POLYFIT_API_TOKENS_FILE"] = str(token_file.resolve())
        where = f"token in {token_file}"
    else:
        where = "a token from POLYFIT_API_TOKENS"
    api = subprocess.Popen([installed("polyfit-api"), "--port", str(port)], env=env,
                           stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return api, where
        except OSError:
            if api.poll() is not None or time.monotonic() > deadline:
                stop_process_group(api.pid)
                raise click.ClickException(f"the API did not start ({log_tail(log_path)}); "
                                           f"its log: {log_path}") from None
            time.sleep(0.2)


def start_worker(redis_url: str, log_path: Path, concurrency: int = 1) -> subprocess.Popen:
    """A ``polyfit-worker`` in a session of its own, logging to ``log_path``."""
    env = {**os.environ, "POLYFIT_REDIS_URL": redis_url}
    log = open(log_path, "ab")
    return subprocess.Popen(worker_command(concurrency), env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_ready(worker: subprocess.Popen, client: PolyfitClient, log_path: Path,
                     timeout: float = 120.0) -> None:
    """Until the worker answers a ping; a worker that exits first (bad settings, a port, a
    missing compiler) fails with its log's last line."""
    deadline = time.monotonic() + timeout
    while not client.celery.control.ping(timeout=0.5):
        if worker.poll() is not None:
            raise click.ClickException(f"the worker exited at start ({log_tail(log_path)}); "
                                       f"its log: {log_path}")
        if time.monotonic() > deadline:
            raise click.ClickException(f"the worker did not answer within {timeout:g} s; "
                                       f"its log: {log_path}")


def log_tail(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def stop_process_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the group's leader (for a worker, Celery's warm shutdown: running fits
    finish, its pool children get no signal of their own), SIGKILL the group if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # our child's zombie would count as the group's
        except ChildProcessError:
            pass  # another's child (`down`): its parent reaps it
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


def runs(pid: int, program: str) -> bool:
    """Whether process ``pid`` is ``program`` still: after a reboot the pid may be another's."""
    if Path("/proc/self").exists():  # Linux, where ps may not be installed
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
    else:
        command = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True,
                                 text=True).stdout
    return program in command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """polyfit on this machine: an embedded Redis and a worker."""


@main.command()
@click.option("--approach", type=click.Choice(APPROACHES), default="legendre", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def run(approach: str, as_json: bool) -> None:
    """Start Redis and a worker, run one fit through them, print it, stop them."""
    server = EmbeddedRedis()
    client = client_for(server.url)
    with embedded(server):
        log_path = server.directory / "worker.log"
        worker = start_worker(server.url, log_path)
        try:
            wait_until_ready(worker, client, log_path)
            job_id = client.submit(FitRequest(approach=approach))
            Console(stderr=True).print(f"submitted {approach} job {job_id} to {server.url}")
            with ProgressView(quiet=as_json) as view:
                def update(record: JobRecord) -> None:
                    view.update(record)
                    if worker.poll() is not None:
                        raise JobFailed(f"the worker exited ({log_tail(log_path)})")

                record = client.wait(job_id, timeout=600, on_update=update)
            if as_json:
                click.echo(json.dumps(record.to_document(), indent=2))
            else:
                show_result(record, OUT)
        except PolyfitError as error:
            click.echo(f"error: {error} (worker log: {log_path})", err=True)
            sys.exit(error.exit_status)
        finally:
            if worker.poll() is None:
                stop_process_group(worker.pid)


def client_for(url: str) -> PolyfitClient:
    """The client, made first: POLYFIT_* settings out of range stop it before anything runs."""
    try:
        return PolyfitClient(url)
    except ValidationError as error:
        raise click.ClickException(f"settings: {describe(error)}") from None


@contextmanager
def embedded(server: EmbeddedRedis, detach: bool = False) -> Iterator[EmbeddedRedis]:
    """``server`` started (a one-line error if it cannot be), and stopped after unless
    ``detach``ed, or when what follows fails."""
    try:
        server.start(detach=detach)
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    try:
        yield server
    except BaseException:
        server.stop()
        raise
    if not detach:
        server.stop()


@main.command()
@click.option("--port", type=int, default=6390, show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--api-port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="The HTTP API and dashboard's port on 127.0.0.1 (0: none).")
def up(port: int, concurrency: int, api_port: int) -> None:
    """Start Redis (append-only, in ./.polyfit), a worker and, where polyfit-api is
    installed, the HTTP API and dashboard, and leave them running."""
    STATE_DIR.mkdir(exist_ok=True)
    pids = STATE_DIR / "pids.json"
    if pids.exists():
        if any(running(json.loads(pids.read_text())).values()):
            raise click.ClickException(f"already up ({pids}); run `polyfit-local down` first")
        pids.unlink()  # left by a crash or a reboot: nothing of it runs
    log_path = STATE_DIR / "worker.log"
    server = EmbeddedRedis(port=port, directory=STATE_DIR.resolve(), appendonly=True)
    client = client_for(server.url)
    with embedded(server, detach=True):
        worker = start_worker(server.url, log_path, concurrency)
        try:
            wait_until_ready(worker, client, log_path)
            started = {"redis": server.process.pid, "worker": worker.pid, "url": server.url}
            if api_port and installed("polyfit-api"):
                api, token = start_api(server.url, api_port, STATE_DIR / "api.log")
                started["api"] = api.pid
        except BaseException:
            stop_process_group(worker.pid)
            raise
    pids.write_text(json.dumps(started))
    click.echo(f"export POLYFIT_REDIS_URL={server.url}")
    if "api" in started:
        click.echo(f"# dashboard and HTTP API: http://127.0.0.1:{api_port}/ ({token})", err=True)
    click.echo(f"# Redis and a worker are running (logs in {STATE_DIR}/); "
               "stop them with `polyfit-local down`", err=True)


def running(started: dict[str, Any]) -> dict[str, bool]:
    """Which of what ``up`` recorded (its pids.json) still runs, by pid and program."""
    return {name: runs(started[name], program)
            for name, program in (("api", "polyfit-api"), ("worker", "polyfit-worker"),
                                  ("redis", "redis-server")) if name in started}


@main.command()
def down() -> None:
    """Stop what `up` started."""
    pids = STATE_DIR / "pids.json"
    if not pids.exists():
        click.echo("nothing is up", err=True)
        return
    started = json.loads(pids.read_text())
    alive = running(started)
    for name in alive:  # the API, then the worker (it finishes the fits it runs), then Redis
        if alive[name]:
            stop_process_group(started[name])
    pids.unlink()
    click.echo("stopped" if any(alive.values()) else f"nothing ran any more; removed {pids}",
               err=True)
