"""Load: 1000 small jobs from 4 client processes to 2 workers — every job succeeds once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import Worker
from polyfit.client import PolyfitClient
from polyfit.models import JobRecord, JobState

pytestmark = [pytest.mark.load, pytest.mark.integration]

CLIENTS, PER_CLIENT, WORKERS = 4, 250, 2

SUBMITTER = """
import sys
from polyfit.client import PolyfitClient
from polyfit.models import FitRequest

url, index, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = PolyfitClient(url)
for i in range(count):
    n = index * count + i
    request = FitRequest(approach="numpy" if n % 2 else "tensor", steps=1 + n % 10, seed=n,
                         n_points=200, record_every=1)
    print(client.submit(request), flush=True)
"""


def wait_ready(workers: list[Worker], timeout: float = 120) -> None:
    """Wait until every worker has said it is ready to consume."""
    deadline = time.monotonic() + timeout
    while not all(" ready." in w.log() for w in workers):
        assert all(w.alive() for w in workers) and time.monotonic() < deadline
        time.sleep(0.1)


def finished(client: PolyfitClient, job_ids: list[str]) -> list[JobRecord] | None:
    """All records, once every job has finished; else None."""
    pipe = client.store.redis.pipeline()
    for job_id in job_ids:
        pipe.hget(f"polyfit:job:{job_id}", "state")
    if any(state not in ("succeeded", "failed", "cancelled") for state in pipe.execute()):
        return None
    return [client.status(job_id) for job_id in job_ids]


def test_thousand_jobs_from_four_clients_to_two_workers(redis_server, start_worker):
    client = PolyfitClient(redis_server.url)
    workers = [start_worker(redis_server.url, name=f"load{i}") for i in range(WORKERS)]
    wait_ready(workers)

    started = time.monotonic()
    submitters = [subprocess.Popen([sys.executable, "-c", SUBMITTER, redis_server.url, str(i),
                                    str(PER_CLIENT)], stdout=subprocess.PIPE, text=True)
                  for i in range(CLIENTS)]
    job_ids = [line.strip() for p in submitters for line in p.communicate(timeout=180)[0].split()]
    submitted = time.monotonic() - started
    assert all(p.returncode == 0 for p in submitters)
    assert len(job_ids) == len(set(job_ids)) == CLIENTS * PER_CLIENT

    deadline = time.monotonic() + 240
    while (records := finished(client, job_ids)) is None:
        assert time.monotonic() < deadline, "jobs still unfinished after 240 s"
        time.sleep(0.25)
    elapsed = time.monotonic() - started

    assert [r.state for r in records] == [JobState.SUCCEEDED] * len(job_ids)
    assert {(r.attempts, r.requeues) for r in records} == {(1, 0)}  # none run twice
    assert all(r.result.steps_run == r.request["steps"] for r in records)
    assert client.store.redis.zcard("polyfit:jobs") == len(job_ids)
    assert client.store.redis.llen("cpu") == 0
    assert all("not run:" not in w.log() for w in workers)  # no duplicate delivery at all
    share = {w: sum(r.worker.startswith(f"load{w}-") for r in records) for w in range(WORKERS)}
    assert all(share.values()), share  # every worker took jobs
    print(f"\nload: {len(job_ids)} jobs from {CLIENTS} clients to {WORKERS} workers "
          f"(concurrency 1): submitted in {submitted:.1f} s, all done in {elapsed:.1f} s, "
          f"{len(job_ids) / elapsed:.0f} jobs/s; per worker {share}")
