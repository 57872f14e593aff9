"""Flower against a real worker: with ``POLYFIT_TASK_EVENTS`` its task list shows polyfit's
tasks (without, it shows none: the workers send no task events by default)."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest

from conftest import BIN
from polyfit.client import PolyfitClient
from polyfit.client.embedded import free_port
from polyfit.models import FitRequest, messages

pytestmark = pytest.mark.integration


def test_flower_lists_the_jobs_of_a_worker_sending_task_events(redis_server, start_worker,
                                                               tmp_path):
    start_worker(redis_server.url, env={"POLYFIT_TASK_EVENTS": "true",
                                        "POLYFIT_WARM_UP": "false"}).wait_ready()
    url = f"http://127.0.0.1:{free_port()}"
    flower = subprocess.Popen(
        [str(BIN / "celery"), "--broker", redis_server.url, "flower", "--address=127.0.0.1",
         f"--port={url.rsplit(':', 1)[1]}"],
        env={**os.environ, "FLOWER_UNAUTHENTICATED_API": "true"},
        stdout=open(tmp_path / "flower.log", "ab"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthcheck", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert flower.poll() is None, (tmp_path / "flower.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Flower did not start"
            time.sleep(0.2)
        client = PolyfitClient(redis_server.url)

        def listed(job_id: str) -> dict:
            client.wait(job_id, timeout=120)
            deadline = time.monotonic() + 30
            while (task := httpx.get(f"{url}/api/tasks", timeout=5).json().get(job_id)) is None \
                    or task["state"] != "SUCCESS":
                assert time.monotonic() < deadline, "Flower never listed the job's task"
                time.sleep(0.2)
            return task

        # Flower's event receiver may start after its healthcheck answers, missing the first
        # job's task-received event (the one naming the task): once it lists a job, it is live
        listed(client.submit(FitRequest(approach="legendre", steps=200, seed=1)))
        task = listed(client.submit(FitRequest(approach="legendre", steps=200, seed=2)))
        assert task["name"] == messages.FIT and task["runtime"] > 0
    finally:
        flower.terminate()
        flower.wait(30)
