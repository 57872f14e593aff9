"""``polyfit-worker``: start a Celery worker with threads set for its share of the cores."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--queues", "-Q", default="cpu", show_default=True,
              help="Comma-separated queues to consume: cpu, cuda.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None,
              help="Worker processes. Default: the core count on cpu, 1 on cuda.")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default=None,
              help="Default: prefork on cpu; solo on cuda (one process per GPU).")
@click.option("--hostname", "-n", default=None, help="Celery node name, e.g. cpu1@%h.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def main(queues: str, concurrency: int | None, pool: str | None, hostname: str | None,
         loglevel: str) -> None:
    """Run a polyfit worker against POLYFIT_REDIS_URL (and serve its metrics on
    POLYFIT_METRICS_PORT, when set)."""
    cuda = "cuda" in queues.split(",")
    pool = pool or ("solo" if cuda else "prefork")
    concurrency = 1 if pool == "solo" else concurrency or os.cpu_count() or 1
    threads = str(max(1, (os.cpu_count() or 1) // concurrency))
    # Before torch or NumPy load: each process gets its share of the cores, no more.
    for name in ("POLYFIT_TORCH_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "MKL_NUM_THREADS"):
        os.environ.setdefault(name, threads)
    # Idle OpenMP threads sleep instead of spinning: a spinning pool thread of one job's
    # process takes the core that Redis, Celery and the next job need (docs/PERFORMANCE.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from pydantic import ValidationError

    from polyfit.models import Settings
    from polyfit.models.request import describe

    try:
        settings = Settings()
    except ValidationError as error:  # a bad POLYFIT_* setting
        raise click.UsageError(f"settings: {describe(error)}") from None
    if settings.compile and not any(
            shutil.which(name) for name in (os.environ.get("CXX", "g++"), "g++", "c++")):
        raise click.UsageError("POLYFIT_COMPILE is set but no C++ compiler (g++) is on PATH: "
                               "torch.compile needs one; install it or unset POLYFIT_COMPILE")
    if settings.compile and pool == "threads":
        raise click.UsageError("POLYFIT_COMPILE needs --pool prefork or solo: torch.compile "
                               "is not safe to run from several threads of one process")
    if settings.metrics_port:
        _serve_metrics(settings.metrics_port, settings.metrics_host)

    argv = ["worker", "--queues", queues, "--pool", pool, "--concurrency", str(concurrency),
            "--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    if hostname:
        argv += ["--hostname", hostname]
    from polyfit.worker.service.app import app

    app.worker_main(argv)


def _serve_metrics(port: int, host: str) -> None:
    """Serve the worker's metrics from this process, before the app's modules import
    prometheus_client: its multiprocess mode, chosen at that import, has every pool process
    write its values to a directory that this process adds up (worker/service/metrics.py)."""
    directory = tempfile.mkdtemp(prefix="polyfit-metrics-")
    owner = os.getpid()
    def remove() -> None:  # in the process that made it, not in its forks
        if os.getpid() == owner:
            shutil.rmtree(directory, True)

    atexit.register(remove)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory

    from polyfit.worker.service.metrics import serve

    try:
        serve(port, host, directory)
    except OSError as error:
        raise click.UsageError(f"POLYFIT_METRICS_PORT: cannot listen on {host}:{port} "
                               f"({error.strerror or error}); choose a free port") from None
