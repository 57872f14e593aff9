"""A worker's own metrics (``POLYFIT_METRICS_PORT``): a real prefork worker whose pool
processes ran the jobs, scraped over HTTP and read with prometheus_client's parser."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from conftest import BIN, Worker
from polyfit.client import PolyfitClient
from polyfit.client.embedded import EmbeddedRedis, free_port
from polyfit.client.errors import JobFailed
from polyfit.models import FitRequest
from polyfit.models.sweep import SweepRequest

pytestmark = pytest.mark.integration

LONG = FitRequest(approach="tensor", steps=1_000_000, seed=1, record_every=100)


class MetricsWorker:
    """Redis and a prefork worker with two pool processes, its metrics on a free port."""

    def __init__(self, directory) -> None:
        self.server = EmbeddedRedis(directory=directory / "redis").start()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.worker = Worker(self.server.url, directory / "worker.log", concurrency=2, env={
            "POLYFIT_METRICS_PORT": str(port), "POLYFIT_WARM_UP": "0"}).wait_ready()
        self.client = PolyfitClient(self.server.url)

    def samples(self) -> dict[tuple[str, tuple], float]:
        from prometheus_client.parser import text_string_to_metric_families

        response = httpx.get(self.url, timeout=10)
        assert response.status_code == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(response.text)
                for s in family.samples}

    def running(self) -> float:
        return self.samples()[("polyfit_worker_jobs_running", ())]


@pytest.fixture(scope="module")
def metered(tmp_path_factory) -> Iterator[MetricsWorker]:
    service = MetricsWorker(tmp_path_factory.mktemp("metrics"))
    yield service
    service.worker.stop()
    service.server.stop()


def test_the_worker_counts_the_jobs_its_pool_processes_ran(metered):
    client = metered.client
    client.wait(client.submit(FitRequest(approach="legendre", seed=1)), timeout=120)
    with pytest.raises(JobFailed):
        client.wait(client.submit(FitRequest(approach="tensor", learning_rate=1.0, steps=1000,
                                             seed=1)), timeout=120)
    client.wait_sweep(client.sweep(SweepRequest(base=FitRequest(approach="numpy", steps=50,
                                                                seed=1),
                                                learning_rates=[1e-6, 2e-6])), timeout=120)

    samples = metered.samples()
    assert samples[("polyfit_worker_jobs_total",
                    (("approach", "legendre"), ("state", "succeeded")))] == 1
    assert samples[("polyfit_worker_jobs_total",
                    (("approach", "tensor"), ("state", "failed")))] == 1
    assert samples[("polyfit_worker_jobs_total",
                    (("approach", "numpy"), ("state", "succeeded")))] == 2  # the sweep's members
    fits = (("approach", "legendre"), ("device", "cpu"))
    assert samples[("polyfit_worker_fit_seconds_count", fits)] == 1
    assert samples[("polyfit_worker_fit_seconds_bucket", (*fits, ("le", "+Inf")))] == 1
    assert 0 < samples[("polyfit_worker_fit_seconds_sum", fits)] < 60
    assert ("polyfit_worker_fit_seconds_count", (("approach", "tensor"), ("device", "cpu"))) \
        not in samples  # failed fits have no seconds
    assert samples[("polyfit_worker_jobs_running", ())] == 0
    assert time.time() - samples[("polyfit_worker_heartbeat_timestamp_seconds", ())] < 30


def test_a_killed_pool_process_stops_counting_as_running(metered):
    job_id = metered.client.submit(LONG)
    deadline = time.monotonic() + 90
    while metered.running() != 1:
        assert time.monotonic() < deadline, "the job never counted as running"
        time.sleep(0.2)
    for pool_process in psutil.Process(metered.worker.process.pid).children():
        os.kill(pool_process.pid, signal.SIGKILL)  # the job's among them
    deadline = time.monotonic() + 30
    while metered.running() != 0:
        assert time.monotonic() < deadline, "a dead process's job still counts as running"
        time.sleep(0.2)
    metered.client.cancel(job_id)


def test_a_metrics_port_in_use_is_refused_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([str(BIN / "polyfit-worker")], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "POLYFIT_METRICS_PORT": str(port),
                                               "POLYFIT_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert run.returncode == 2
    assert f"POLYFIT_METRICS_PORT: cannot listen on 127.0.0.1:{port}" in run.stderr
    assert "Traceback" not in run.stderr
