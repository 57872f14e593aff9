"""Fixtures that start real services: a private redis-server and real worker processes."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from polyfit.client import PolyfitClient
from polyfit.client.embedded import EmbeddedRedis, free_port
from polyfit.models import messages
from polyfit.models.settings import current_settings

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent



def requires_cuda() -> pytest.MarkDecorator:
    """Skips a test without a CUDA GPU; torch is imported only by the tests that use it."""
    import torch

    return pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def noisy_line(n: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y and σ of a noisy quadratic whose points have unequal σ: weighted-fit tests' data."""
    rng = np.random.default_rng(5)
    x = np.linspace(-2, 3, n)
    sigma = 0.1 + 0.5 * rng.uniform(size=n)
    return x, 1.5 - 0.7 * x + 0.2 * x**2 + sigma * rng.normal(size=n), sigma


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run ``polyfit-client`` as a user would; returns the finished process."""
    return subprocess.run([str(BIN / "polyfit-client"), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, input=input)


class Worker:
    """A ``polyfit-worker`` process group, started the way users start it. A ``cpu``-queue
    worker sees no GPU, so that its ``device auto`` jobs run on the CPU on a GPU machine too
    (where a worker with a GPU takes cuda for them)."""

    def __init__(self, redis_url: str, log: Path, queues: str = "cpu", concurrency: int = 1,
                 env: dict[str, str] | None = None, name: str = "w") -> None:
        self.log_path = log
        command = [str(BIN / "polyfit-worker"), "--queues", queues, "--concurrency",
                   str(concurrency), "--hostname", f"{name}-{os.getpid()}-{time.time_ns()}@%h",
                   "--loglevel", "INFO"]
        hidden_gpus = {"CUDA_VISIBLE_DEVICES": ""} if queues == "cpu" else {}
        self.heartbeat = log.with_suffix(".heartbeat")
        environment = {**os.environ, "POLYFIT_REDIS_URL": redis_url, **hidden_gpus,
                       "POLYFIT_HEARTBEAT_FILE": str(self.heartbeat), **(env or {})}
        self.process = subprocess.Popen(command, env=environment, stdout=open(log, "ab"),
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = 300) -> Worker:
        """Until the worker consumes (its first heartbeat), however slowly a busy machine
        starts it."""
        deadline = time.monotonic() + timeout
        while not self.heartbeat.exists():
            assert self.alive(), self.log()
            assert time.monotonic() < deadline, f"worker not consuming after {timeout} s"
            time.sleep(0.1)
        return self

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()
        self.signal(signal.SIGKILL)  # any pool child left behind

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


TOKEN, OTHER, FROM_FILE = "token-one", "token-two", "token-from-file"


class Api:
    """Redis, one worker (its metrics on ``worker_metrics``) and ``polyfit-api`` on a free
    port, shared by this module's tests."""

    def __init__(self, directory: Path, rate_limit: int = 100) -> None:
        self.server = EmbeddedRedis(directory=directory / "redis").start()
        self.worker_metrics = f"127.0.0.1:{free_port()}"
        self.worker = Worker(self.server.url, directory / "worker.log", env={
            "POLYFIT_METRICS_PORT": self.worker_metrics.split(":")[1]}).wait_ready()
        tokens = directory / "tokens"
        tokens.write_text(f"{FROM_FILE}\n")
        self.log = directory / "api.log"
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "POLYFIT_REDIS_URL": self.server.url,
               "POLYFIT_API_TOKENS": f"{TOKEN},{OTHER}", "POLYFIT_API_TOKENS_FILE": str(tokens),
               "POLYFIT_API_RATE_LIMIT": str(rate_limit), "POLYFIT_API_MAX_BODY_BYTES": "65536"}
        self.process = subprocess.Popen(
            [str(BIN / "polyfit-api"), "--port", self.url.rsplit(":", 1)[1]], env=env,
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=self.url, timeout=30,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.http.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "polyfit-api did not start"
            time.sleep(0.2)

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(20)
        self.worker.stop()
        self.server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The compose check builds images for minutes: it runs only when asked for by name."""
    if "compose" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="builds the images: run it with `pytest -m compose`")
    for item in items:
        if "compose" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Settings are read once per process; a test that changes POLYFIT_* env sees its own."""
    current_settings.cache_clear()
    yield
    current_settings.cache_clear()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A private redis-server on a free port, without persistence."""
    server = EmbeddedRedis(directory=tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start real worker processes; all are stopped after the test."""
    workers: list[Worker] = []

    def start(redis_url: str, **options) -> Worker:
        worker = Worker(redis_url, tmp_path / f"worker{len(workers)}.log", **options)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def service(redis_server: EmbeddedRedis, start_worker) -> Iterator[tuple[PolyfitClient, Worker]]:
    """Redis, one cpu worker, and a client connected to them."""
    worker = start_worker(redis_server.url).wait_ready()
    yield PolyfitClient(redis_server.url), worker


def envelope(body: bytes, task_id: str, task: str = messages.FIT,
             content_type: str = "application/json", content_encoding: str = "utf-8",
             **headers: Any) -> str:
    """A Celery protocol 2 message in kombu's Redis envelope, as a sender would LPUSH it;
    ``headers`` replace Celery's."""
    headers = {"lang": "py", "task": task, "id": task_id, "root_id": task_id, "retries": 0,
               "timelimit": [None, None], "argsrepr": "", "kwargsrepr": "", **headers}
    return json.dumps({
        "body": base64.b64encode(body).decode(), "content-encoding": content_encoding,
        "content-type": content_type, "headers": headers,
        "properties": {"correlation_id": task_id, "delivery_mode": 2, "priority": 0,
                       "delivery_info": {"exchange": "", "routing_key": "cpu"},
                       "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())}})
