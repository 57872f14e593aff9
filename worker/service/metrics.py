"""This worker's own Prometheus metrics, served on an opt-in port (``POLYFIT_METRICS_PORT``)
by its main process: the jobs it ran and how they ended, its fits' seconds, the jobs it runs
now, and its consumer loop's heartbeat. The service's totals (queues, every worker's jobs,
re-queues) are the API's ``/metrics``, read from Redis (``api/metrics.py``).

A prefork worker runs its jobs in pool processes: each writes its values to files in a
directory of its own (prometheus_client's multiprocess mode), which the main process adds
up at each scrape. That mode is chosen when prometheus_client is first imported: the
worker's command line (cli.py) sets ``PROMETHEUS_MULTIPROC_DIR`` before it imports this.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from polyfit.models import FitResult, JobState
from polyfit.store.stats import FIT_SECONDS_BUCKETS

JOBS = Counter("polyfit_worker_jobs", "Jobs this worker ran to their end, by approach and "
               "final state", ["approach", "state"])
FIT_SECONDS = Histogram("polyfit_worker_fit_seconds", "Seconds this worker's successful fits "
                        "took", ["approach", "device"], buckets=FIT_SECONDS_BUCKETS)
RUNNING = Gauge("polyfit_worker_jobs_running", "Jobs this worker is running now",
                multiprocess_mode="livesum")
HEARTBEAT = Gauge("polyfit_worker_heartbeat_timestamp_seconds", "When this worker's consumer "
                  "loop last said it was alive (Unix time)", multiprocess_mode="max")


def job_ended(approach: str, state: JobState, result: FitResult | None = None) -> None:
    """Count a job this worker recorded the end of (a result's seconds when it succeeded)."""
    JOBS.labels(approach, state.value).inc()
    if result is not None:
        FIT_SECONDS.labels(approach, result.device).observe(result.fit_seconds)


class PoolCollector(MultiProcessCollector):
    """Adds up the processes' files, first forgetting the live gauges of processes that are
    gone (a pool process killed mid-job would count its job as running forever)."""

    def collect(self) -> Iterable[Metric]:
        for path in glob.glob(os.path.join(self._path, "gauge_live*_*.db")):
            pid = int(path.removesuffix(".db").rsplit("_", 1)[1])
            if not _alive(pid):
                mark_process_dead(pid, self._path)
        return super().collect()


def serve(port: int, host: str, directory: str) -> None:
    """Serve ``http://host:port/metrics`` from a thread of this (the main) process, adding
    up the values every process wrote to ``directory``; raises OSError when the port
    cannot be had."""
    registry = CollectorRegistry()
    PoolCollector(registry, directory)
    start_http_server(port, host, registry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
