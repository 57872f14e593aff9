"""Records don't grow without bound: retention, deletion, pruning, and listings served from
the per-state and per-approach indexes rather than a scan. Real Redis and real workers."""

from __future__ import annotations

import time

import pytest

from conftest import cli
from polyfit.client import PolyfitClient
from polyfit.client.status import ExitStatus
from polyfit.models import FitRequest, FitResult, JobError, Settings
from polyfit.models.sweep import SweepRequest
from polyfit.store import JobStore
from polyfit.store.keys import JOBS, index_key, job_key

pytestmark = pytest.mark.integration

EXACT = FitRequest(approach="exact")
ENDLESS = FitRequest(approach="dynamic", steps=1_000_000, seed=1)  # minutes


def finished_jobs(store: JobStore, request: FitRequest, count: int,
                  fail: bool = False) -> list[str]:
    """Jobs submitted, claimed and ended through the store's own scripts, as a worker ends
    them."""
    result = FitResult(coefficients={"a": 0.0, "b": 1.0}, initial_coefficients={"a": 0.0, "b": 0.0},
                       formula="y = x", loss_history=[(0, 1.0)], final_loss=1.0,
                       optimum_loss=None, steps_run=1, device="cpu", fit_seconds=0.001)
    job_ids = [store.create(request) for _ in range(count)]
    pipe = store.redis.pipeline(transaction=False)
    for job_id in job_ids:
        store.queue_claim(pipe, job_id, f"t-{job_id}", "w")
    pipe.execute()
    for job_id in job_ids:
        if fail:
            store.fail(job_id, f"t-{job_id}", JobError(type="Boom", message="planted"))
        else:
            store.succeed(job_id, f"t-{job_id}", result, request.approach)
    return job_ids


def hgetall_calls(store: JobStore) -> int:
    stats = store.redis.info("commandstats").get("cmdstat_hgetall", {})
    return int(stats.get("calls", 0))


def test_list_by_state_reads_only_its_index(redis_server):
    """3 failed jobs among 2,000 succeeded ones: listing the failed ones reads 3 records, not
    2,003; an approach filter reads its own index; an expired record leaves the index."""
    store = JobStore.from_url(redis_server.url, Settings(redis_url=redis_server.url))
    finished_jobs(store, EXACT, 2000)
    failed = finished_jobs(store, FitRequest(approach="numpy", steps=5), 3, fail=True)
    newest = store.create(FitRequest(approach="numpy", steps=5))

    before = hgetall_calls(store)
    listed = store.list(20, {"failed"})
    assert [r.job_id for r in listed] == failed[::-1]
    assert hgetall_calls(store) - before == 3

    by_approach = store.list(20, approach="numpy")
    assert [r.job_id for r in by_approach] == [newest, *failed[::-1]]
    assert [r.job_id for r in store.list(2, {"failed", "queued"}, "numpy")] == [newest,
                                                                               failed[2]]

    store.redis.delete(job_key(failed[1]))  # as its TTL would
    assert [r.job_id for r in store.list(20, {"failed"})] == [failed[2], failed[0]]
    assert store.redis.zscore(index_key("failed", "numpy"), failed[1]) is None


def test_trim_drops_expired_ids_from_every_listing(redis_server):
    store = JobStore.from_url(redis_server.url, Settings(redis_url=redis_server.url))
    kept, gone = finished_jobs(store, EXACT, 2)
    store.redis.delete(job_key(gone))
    assert store.trim() == 2  # the listing of all jobs and the (succeeded, exact) index
    assert store.redis.zrange(JOBS, 0, -1) == [kept]
    assert store.redis.zrange(index_key("succeeded", "exact"), 0, -1) == [kept]


def test_delete_from_the_cli(redis_server):
    """Queued and finished jobs go with their listings; an unknown id exits 3 with one line,
    after the others are deleted."""
    client = PolyfitClient(redis_server.url)
    queued = client.submit(EXACT)
    done = finished_jobs(client.store, EXACT, 1)[0]
    unknown = "0" * 32
    run = cli("--redis-url", redis_server.url, "delete", queued, done, unknown)
    assert run.returncode == ExitStatus.NOT_FOUND, run.stderr
    assert run.stdout.splitlines() == [f"{queued}: deleted (was queued)",
                                       f"{done}: deleted (was succeeded)"]
    assert run.stderr.count("\n") == 1
    assert f"job {unknown} not found (2 others deleted)" in run.stderr
    assert client.list() == []
    assert client.store.redis.keys("polyfit:index:*") == []


def test_deleting_a_running_job_stops_its_worker_and_leaves_nothing(redis_server, start_worker):
    """The fit stops (the worker's one slot runs the next job within a minute, where the
    deleted fit would have run for minutes) and writes nothing back."""
    worker = start_worker(redis_server.url, env={"POLYFIT_LEASE_SECONDS": "2"}).wait_ready()
    client = PolyfitClient(redis_server.url)
    job_id = client.submit(ENDLESS)
    deadline = time.monotonic() + 60
    while client.status(job_id).progress is None:
        assert time.monotonic() < deadline, "the job never ran"
        time.sleep(0.1)
    assert client.delete([job_id]) == {job_id: "running"}

    after = client.submit(EXACT)  # the worker's only slot: free only once the fit stopped
    assert client.wait(after, timeout=60).result is not None
    assert not client.store.redis.exists(job_key(job_id))
    assert [r.job_id for r in client.list()] == [after]
    assert worker.alive()


def test_prune_by_age_and_state(redis_server):
    client = PolyfitClient(redis_server.url)
    succeeded = finished_jobs(client.store, EXACT, 3)
    failed = finished_jobs(client.store, EXACT, 2, fail=True)
    queued = client.submit(EXACT)

    url = ["--redis-url", redis_server.url]
    assert cli(*url, "prune", "--older-than", "7d").stdout.strip() == "deleted 0 job(s)"
    time.sleep(0.05)
    run = cli(*url, "prune", "--older-than", "0s", "--state", "failed")
    assert run.stdout.strip() == "deleted 2 job(s)", run.stderr
    assert {r.job_id for r in client.list()} == {*succeeded, queued}
    assert client.prune(0) == 3  # a queued job is never pruned
    assert [r.job_id for r in client.list()] == [queued]
    assert not any(client.store.redis.exists(job_key(job_id)) for job_id in failed)

    bad = cli(*url, "prune", "--older-than", "a week")
    assert bad.returncode == ExitStatus.INVALID_REQUEST and "7d" in bad.stderr
    with pytest.raises(ValueError, match="finished jobs only"):
        client.prune(0, "queued")


def test_sweep_delete_takes_its_members(redis_server):
    client = PolyfitClient(redis_server.url)
    sweep_id = client.sweep(SweepRequest(base=FitRequest(approach="nn", steps=10),
                                         learning_rates=[1e-6, 2e-6], seeds=[1, 2]))
    members = client.store.member_ids(sweep_id)
    url = ["--redis-url", redis_server.url]
    run = cli(*url, "sweep-delete", sweep_id)
    assert run.stdout.strip() == f"{sweep_id}: deleted with 4 member job(s)", run.stderr
    assert client.list() == [] and not client.store.redis.exists(*map(job_key, members))
    again = cli(*url, "sweep-delete", sweep_id)
    assert again.returncode == ExitStatus.NOT_FOUND
    assert f"sweep {sweep_id} not found" in again.stderr
