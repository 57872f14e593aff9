"""Faults: workers killed with real signals, Redis restarted or gone, limits hit — no job lost.

Every test runs a real ``redis-server`` and real ``polyfit-worker`` process groups. Workers
get a 2 s lease so that a lost worker's job is re-queued within seconds.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
from pydantic import ValidationError

from conftest import Worker, cli
from polyfit.client import PolyfitClient
from polyfit.client.embedded import EmbeddedRedis, free_port
from polyfit.client.errors import JobCancelled, JobFailed, RedisUnavailable
from polyfit.client.status import ExitStatus
from polyfit.models import FitRequest, JobError, JobRecord, JobState, Settings, messages

pytestmark = pytest.mark.integration

FAST = {"POLYFIT_LEASE_SECONDS": "2"}
SMALL = FitRequest(approach="numpy", steps=5, seed=1)
LONG = FitRequest(approach="tensor", steps=1_000_000, seed=1, record_every=100)  # ~20 s
RERUN = FitRequest(approach="tensor", steps=80_000, seed=1, record_every=100)  # a few s


def eventually(check: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
    return found


def running(client: PolyfitClient, job_id: str) -> JobRecord:
    """Wait until the job is running and has reported progress (it is mid-fit)."""
    def mid_fit() -> JobRecord | None:
        record = client.status(job_id)
        return record if record.state == JobState.RUNNING and record.progress else None
    return eventually(mid_fit, 90, f"job {job_id} to run")


def ready(client: PolyfitClient) -> None:
    """Wait until a worker consumes: one small job round trip."""
    client.wait(client.submit(SMALL), timeout=90)


def pool_children(worker: Worker) -> list[psutil.Process]:
    return psutil.Process(worker.process.pid).children()


def test_sigkilled_worker_job_runs_again_once(redis_server, start_worker):
    """A worker SIGKILLed mid-job: its lease lapses, another worker runs the job to one result;
    a late duplicate delivery of the finished job changes nothing."""
    client = PolyfitClient(redis_server.url)
    workers = {name: start_worker(redis_server.url, name=name, env=FAST) for name in "ab"}
    job_id = client.submit(RERUN)
    first = running(client, job_id)
    victim = first.worker.split("-")[0]
    survivor = workers["b" if victim == "a" else "a"]
    workers[victim].signal(signal.SIGKILL)
    killed_at = time.time()

    record = client.wait(job_id, timeout=60)  # re-run and finished within a minute
    print(f"\nkill: job re-run on the live worker {record.started_at - killed_at:.1f} s after "
          f"the SIGKILL, finished {record.finished_at - killed_at:.1f} s after it")

    assert record.state == JobState.SUCCEEDED and record.result is not None
    assert (record.attempts, record.requeues) == (2, 1)
    assert record.worker.startswith("b-" if victim == "a" else "a-")
    assert record.started_at > killed_at
    assert re.search(rf"re-queued 1 job\(s\) whose worker .*: {job_id}", survivor.log())

    client.celery.send_task(messages.FIT, args=messages.arguments(job_id), queue="cpu",
                            task_id=job_id)
    eventually(lambda: f"job {job_id} not run: succeeded" in survivor.log(), 30,
               "the duplicate delivery")
    assert client.status(job_id) == record


def test_redelivery_past_the_visibility_timeout_does_not_run_a_leased_job_twice(
        redis_server, start_worker):
    """Redis hands a running job's message to a second worker (one whose visibility timeout
    is shorter than the job): the live lease makes that delivery a no-op."""
    client = PolyfitClient(redis_server.url)
    start_worker(redis_server.url, name="a", env=FAST)
    job_id = client.submit(LONG)
    running(client, job_id)
    eager = start_worker(redis_server.url, name="b", env={
        **FAST, "POLYFIT_VISIBILITY_TIMEOUT": "3", "POLYFIT_HARD_TIME_LIMIT": "2",
        "POLYFIT_SOFT_TIME_LIMIT": "1"})

    eventually(lambda: f"job {job_id} not run: leased" in eager.log(), 60,
               "the second delivery")
    record = client.status(job_id)
    assert (record.state, record.attempts, record.requeues) == (JobState.RUNNING, 1, 0)
    assert record.worker.startswith("a-")
    client.cancel(job_id)
    with pytest.raises(JobCancelled):
        client.wait(job_id, timeout=30)
    assert client.status(job_id).attempts == 1


def test_settings_keep_visibility_timeout_above_the_time_limits(tmp_path: Path):
    """Redis must never re-deliver a job that may still be running: the limits are ordered."""
    Settings(soft_time_limit=1, hard_time_limit=2, visibility_timeout=3)
    with pytest.raises(ValidationError, match="POLYFIT_VISIBILITY_TIMEOUT"):
        Settings(hard_time_limit=700, visibility_timeout=700)
    with pytest.raises(ValidationError, match="POLYFIT_SOFT_TIME_LIMIT"):
        Settings(soft_time_limit=60, hard_time_limit=30)

    done = cli("status", "x", env={"POLYFIT_HARD_TIME_LIMIT": "5000"})
    assert done.returncode == ExitStatus.INVALID_REQUEST and done.stderr.count("\n") == 1
    assert "POLYFIT_VISIBILITY_TIMEOUT (3600) must exceed" in done.stderr

    worker = Worker("redis://127.0.0.1:1/0", tmp_path / "bad.log", env={
        "POLYFIT_SOFT_TIME_LIMIT": "90", "POLYFIT_HARD_TIME_LIMIT": "100",
        "POLYFIT_VISIBILITY_TIMEOUT": "50"})
    assert worker.process.wait(60) != 0
    assert "POLYFIT_VISIBILITY_TIMEOUT (50) must exceed" in worker.log()


def test_redis_restart_with_append_only_keeps_queued_and_finished_jobs(tmp_path, start_worker):
    server = EmbeddedRedis(directory=tmp_path / "aof", appendonly=True).start()
    try:
        client = PolyfitClient(server.url)
        first = start_worker(server.url, env=FAST)
        finished = client.wait(client.submit(SMALL), timeout=90)
        first.stop()
        queued = [client.submit(SMALL) for _ in range(3)]

        server.stop()
        server.start()

        assert client.status(finished.job_id) == finished
        assert client.result(finished.job_id) == finished.result
        assert [client.status(j).state for j in queued] == [JobState.QUEUED] * 3
        start_worker(server.url, env=FAST)
        for job_id in queued:
            assert client.wait(job_id, timeout=90).state == JobState.SUCCEEDED
    finally:
        server.stop()


def test_worker_survives_redis_loss_mid_job_and_keeps_consuming(tmp_path, start_worker):
    """Redis killed while a job runs and back 3 s later (longer than the lease): the job is
    not lost, and the worker reconnects and takes new jobs."""
    server = EmbeddedRedis(directory=tmp_path / "aof", appendonly=True).start()
    try:
        client = PolyfitClient(server.url)
        worker = start_worker(server.url, env=FAST)
        ready(client)
        job_id = client.submit(RERUN)
        running(client, job_id)

        server.kill()
        time.sleep(3)
        server.start()

        record = client.wait(job_id, timeout=120)
        assert record.state == JobState.SUCCEEDED and record.attempts in (1, 2)
        after = client.wait(client.submit(SMALL), timeout=60)
        assert after.state == JobState.SUCCEEDED and after.attempts == 1
        assert worker.alive()
    finally:
        server.stop()


def test_redis_blips_cost_a_running_job_no_attempt(tmp_path, start_worker):
    """Three Redis restarts of about a second each during a job with a 2 s lease: its worker
    lives, so the job ends on its first attempt, never re-queued (each blip used to cost an
    attempt, and three failed a healthy job as WorkerLost)."""
    server = EmbeddedRedis(directory=tmp_path / "aof", appendonly=True).start()
    try:
        client = PolyfitClient(server.url)
        worker = start_worker(server.url, env=FAST)
        ready(client)
        job_id = client.submit(LONG)
        running(client, job_id)
        for _ in range(3):
            server.kill()
            time.sleep(1)
            server.start()
            time.sleep(2)
        record = client.wait(job_id, timeout=120)
        assert record.state == JobState.SUCCEEDED, record.error
        assert (record.attempts, record.requeues) == (1, 0)
        assert worker.alive()
    finally:
        server.stop()


def test_unreachable_redis_exits_4_with_one_line():
    url = f"redis://127.0.0.1:{free_port()}/0"
    for args in (["status", "x"], ["submit", "--approach", "numpy"], ["wait", "x"]):
        done = cli("--redis-url", url, *args)
        assert done.returncode == ExitStatus.REDIS_UNAVAILABLE, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "is unreachable" in done.stderr
    with pytest.raises(RedisUnavailable, match="unreachable"):
        PolyfitClient(url).submit(SMALL)


def test_full_redis_refuses_a_submit_with_exit_4(redis_server):
    redis.Redis.from_url(redis_server.url).config_set("maxmemory", 1)
    done = cli("--redis-url", redis_server.url, "submit", "--approach", "numpy")
    assert done.returncode == ExitStatus.REDIS_UNAVAILABLE, done.stderr
    assert "refused a write" in done.stderr and "maxmemory" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_full_redis_writes_nothing_half_and_its_worker_finishes_once_freed(
        redis_server, start_worker):
    """Redis at maxmemory (noeviction) for 10 s while a job runs with a 2 s lease: a submit
    exits 4 and leaves no record and no message; the worker keeps running (a refused
    acknowledgement stopped it) and, once memory frees, records its job's result on its
    first attempt, then runs the next job."""
    client = PolyfitClient(redis_server.url)
    worker = start_worker(redis_server.url, env=FAST)
    ready(client)
    job_id = client.submit(RERUN)
    running(client, job_id)
    store = client.store.redis
    keys = set(store.keys("*"))

    store.config_set("maxmemory", 1)
    try:
        done = cli("--redis-url", redis_server.url, "submit", "--approach", "numpy")
        assert done.returncode == ExitStatus.REDIS_UNAVAILABLE, done.stderr
        assert "refused a write" in done.stderr, done.stderr
        assert {key for key in store.keys("*") if key.startswith("polyfit:job:")} == {
            key for key in keys if key.startswith("polyfit:job:")}
        assert store.llen("cpu") == 0
        time.sleep(10)
        assert worker.alive()
    finally:
        store.config_set("maxmemory", 0)

    record = client.wait(job_id, timeout=90)
    assert record.state == JobState.SUCCEEDED and (record.attempts, record.requeues) == (1, 0)
    assert client.wait(client.submit(SMALL), timeout=60).state == JobState.SUCCEEDED
    assert worker.alive()


@pytest.fixture
def limited(redis_server, start_worker) -> tuple[PolyfitClient, Worker]:
    """A worker whose fits stop after 2 s (soft) and whose pool kills a fit after 4 s (hard);
    the lease (15 s) outlasts both."""
    worker = start_worker(redis_server.url, env={
        "POLYFIT_SOFT_TIME_LIMIT": "2", "POLYFIT_HARD_TIME_LIMIT": "4"})
    return PolyfitClient(redis_server.url), worker


def test_time_limits_fail_the_job_and_the_worker_lives(limited):
    client, worker = limited
    soft = client.submit(LONG)
    with pytest.raises(JobFailed, match="time limit exceeded"):
        client.wait(soft, timeout=90)
    record = client.status(soft)
    assert record.error.type == "TimeLimitExceeded" and record.partial_history

    hard = client.submit(LONG)  # a fit stuck where it cannot check the clock: SIGSTOPped
    running(client, hard)
    (child,) = pool_children(worker)
    child.send_signal(signal.SIGSTOP)
    with pytest.raises(JobFailed, match=r"time limit exceeded \(4 s, hard\)"):
        client.wait(hard, timeout=60)
    assert client.status(hard).attempts == 1

    assert client.wait(client.submit(SMALL), timeout=60).state == JobState.SUCCEEDED
    assert worker.alive()


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Iterator[tuple[PolyfitClient, Worker]]:
    """Redis and one worker with default settings, for the tests that leave both as they were."""
    directory = tmp_path_factory.mktemp("shared")
    server = EmbeddedRedis(directory=directory / "redis").start()
    worker = Worker(server.url, directory / "worker.log").wait_ready()
    yield PolyfitClient(server.url), worker
    worker.stop()
    server.stop()


def test_divergence_fails_with_the_step_and_a_hint(shared):
    client, worker = shared
    job_id = client.submit(FitRequest(approach="tensor", learning_rate=1.0, steps=1000,
                                      record_every=1, seed=1))
    with pytest.raises(JobFailed, match=r"diverged at step \d+ .*lower learning_rate"):
        client.wait(job_id, timeout=90)
    record = client.status(job_id)
    assert record.error.type == "Diverged" and len(record.partial_history) >= 1
    assert record.attempts == 1  # a deterministic failure is not retried
    assert "Retry in" not in worker.log()


def test_cancel_stops_a_running_job_between_steps_and_a_queued_one_before_it_runs(shared):
    client, _ = shared
    busy = client.submit(LONG)
    waiting = client.submit(SMALL)
    running(client, busy)

    assert client.cancel(waiting) == "cancelled"
    asked = time.time()
    assert client.cancel(busy) == "requested"
    with pytest.raises(JobCancelled):
        client.wait(busy, timeout=30)

    stopped = client.status(busy)
    print(f"\ncancel: running job stopped {stopped.finished_at - asked:.3f} s after the request")
    assert stopped.partial_history and stopped.partial_history[-1][0] < LONG.steps - 1
    assert "cancelled at step" in stopped.error.message
    ready(client)  # the worker has taken the cancelled message by now, and skipped it
    skipped = client.status(waiting)
    assert (skipped.state, skipped.attempts, skipped.started_at) == (JobState.CANCELLED, 0, None)


def test_one_lease_thread_renews_every_held_job_and_notes_those_taken_over(redis_server,
                                                                          monkeypatch):
    """A worker process's Leases renew a job and a sweep's members alike; a job whose record
    now names another attempt's token is lost to this one, and only that job."""
    import polyfit.worker.service.app as service
    import polyfit.worker.service.leases as leasing
    from polyfit.store import SweepStore
    from polyfit.store.keys import job_key, lease_key

    settings = Settings(redis_url=redis_server.url, lease_seconds=1)
    store = SweepStore.from_url(redis_server.url, settings)
    monkeypatch.setattr(leasing, "settings", settings)
    monkeypatch.setattr(service, "_store", store)
    jobs = [store.create(SMALL) for _ in range(3)]
    for job_id in jobs:
        assert store.claim(job_id, "attempt-1", "w").outcome == "claimed"
    leases = leasing.Leases()
    leases.hold(jobs[:1], "attempt-1")  # a job
    leases.hold(jobs[1:], "attempt-1")  # a sweep's members
    store.redis.hset(job_key(jobs[2]), "token", "attempt-2")
    time.sleep(2.5)  # past the 1 s lease, renewed every 1/3 s: only renewals keep it
    assert [leases.lost(j) for j in jobs] == [False, False, True]
    assert all(store.redis.exists(lease_key(j)) for j in jobs[:2])
    leases.release(jobs)
    assert not leases.lost(jobs[2])


def test_a_job_whose_workers_keep_dying_fails_and_expires_like_any_finished_job(redis_server):
    """Past max_attempts the next claim fails the job as WorkerLost, with the result TTL."""
    from polyfit.store import JobStore
    from polyfit.store.keys import lease_key

    settings = Settings(redis_url=redis_server.url, max_attempts=1, result_ttl=60)
    store = JobStore.from_url(redis_server.url, settings)
    job_id = store.create(SMALL)
    assert store.claim(job_id, "attempt-1", "w").outcome == "claimed"
    store.redis.delete(lease_key(job_id))  # its worker died: the lease lapsed
    assert store.reap() == [job_id]
    assert store.claim(job_id, "attempt-2", "w").outcome == "failed"
    record = store.get(job_id)
    assert (record.state, record.error.type) == (JobState.FAILED, "WorkerLost")
    assert 0 < store.redis.ttl(f"polyfit:job:{job_id}") <= 60


def test_max_attempts_counts_real_worker_deaths(redis_server, start_worker):
    """POLYFIT_MAX_ATTEMPTS=2: the worker running the job SIGKILLed twice (a new worker each
    time); the third worker fails the job as WorkerLost on its claim, attempts 2."""
    env = {**FAST, "POLYFIT_MAX_ATTEMPTS": "2"}
    client = PolyfitClient(redis_server.url)
    job_id = client.submit(LONG)
    for attempt in (1, 2):
        worker = start_worker(redis_server.url, env=env, name=f"dies{attempt}")
        def mid_fit(attempt: int = attempt) -> bool:
            record = client.status(job_id)
            return record.attempts == attempt and record.progress is not None

        eventually(mid_fit, 90, f"attempt {attempt}")
        worker.signal(signal.SIGKILL)
    start_worker(redis_server.url, env=env, name="last")
    with pytest.raises(JobFailed, match="WorkerLost"):
        client.wait(job_id, timeout=90)
    record = client.status(job_id)
    assert (record.state, record.error.type, record.attempts) == (JobState.FAILED,
                                                                  "WorkerLost", 2)


def test_progress_is_written_by_the_attempt_holding_the_job_only(redis_server):
    """A stale attempt (its lease taken over) or one whose job record expired writes no
    progress: it would overwrite the new attempt's, or leave a hash that is no job."""
    from polyfit.models.job import Progress
    from polyfit.store import JobStore
    from polyfit.store.keys import job_key

    store = JobStore.from_url(redis_server.url, Settings(redis_url=redis_server.url))
    job_id = store.create(SMALL)
    assert store.claim(job_id, "attempt-1", "w").outcome == "claimed"
    assert store.progress(job_id, "attempt-1", Progress(step=10, steps=100, loss=1.5))
    store.redis.hset(job_key(job_id), "token", "attempt-2")  # another attempt took over
    assert not store.progress(job_id, "attempt-1", Progress(step=20, steps=100, loss=1.0))
    assert store.get(job_id).progress.step == 10
    store.delete([job_id])
    assert not store.progress(job_id, "attempt-2", Progress(step=30, steps=100, loss=0.5))
    assert not store.redis.exists(job_key(job_id))


def test_a_retry_that_cannot_be_sent_puts_the_delivery_back():
    """Redis away while a job's delivery retries: Celery would drop the delivery (its job
    still queued, so lost); polyfit's tasks requeue it. The send fails for real here."""
    from celery import Celery
    from celery.exceptions import Reject

    from polyfit.worker.service.app import RequeuingTask
    from polyfit.worker.service.sweep_tasks import sweep
    from polyfit.worker.service.tasks import fit

    assert isinstance(fit, RequeuingTask) and isinstance(sweep, RequeuingTask)
    app = Celery("retry-test", task_cls=RequeuingTask, set_as_current=False,
                 broker=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there

    @app.task(bind=True)
    def job(self) -> None:  # never run: only retried
        pass

    job.push_request(id="job", args=[], kwargs={}, called_directly=False, retries=0,
                     delivery_info={"routing_key": "cpu"})
    try:
        with pytest.raises(Reject) as rejected:
            job.retry(exc=redis.ConnectionError("Redis away"), countdown=1)
    finally:
        job.pop_request()
    assert rejected.value.requeue


def test_heartbeat_file_is_fresh_while_the_worker_consumes_and_stale_while_it_is_stopped(
        redis_server, start_worker, tmp_path):
    """The compose healthchecks read POLYFIT_HEARTBEAT_FILE's age: the main process's event
    loop touches it every 5 s, and a stopped worker leaves it unchanged."""
    from polyfit.worker.service.heartbeat import INTERVAL

    beat = tmp_path / "heartbeat"
    worker = start_worker(redis_server.url, env={"POLYFIT_HEARTBEAT_FILE": str(beat)})
    ready(PolyfitClient(redis_server.url))
    first = eventually(lambda: beat.exists() and beat.stat().st_mtime, 30, "the first beat")
    eventually(lambda: beat.stat().st_mtime > first, 3 * INTERVAL, "a second beat")
    worker.signal(signal.SIGSTOP)
    try:
        stopped = beat.stat().st_mtime
        time.sleep(2.5 * INTERVAL)
        assert beat.stat().st_mtime == stopped
    finally:
        worker.signal(signal.SIGCONT)
    eventually(lambda: beat.stat().st_mtime > stopped, 3 * INTERVAL, "beats after SIGCONT")


def test_a_lapsed_job_whose_cancel_was_asked_for_ends_cancelled_without_another_attempt(
        redis_server):
    """A job cancelled while its worker is frozen: when its lease lapses the reaper ends it
    cancelled (with the result TTL) instead of re-queuing it to be claimed, on attempt 2, only
    to stop at its first check."""
    from polyfit.store import JobStore
    from polyfit.store.keys import RUNNING, lease_key

    store = JobStore.from_url(redis_server.url,
                              Settings(redis_url=redis_server.url, result_ttl=60))
    job_id = store.create(SMALL)
    assert store.claim(job_id, "attempt-1", "w").outcome == "claimed"
    assert store.cancel(job_id) == "requested"
    store.redis.delete(lease_key(job_id))  # the frozen worker renewed nothing
    assert store.reap() == []
    record = store.get(job_id)
    assert (record.state, record.error.type, record.attempts, record.requeues) == (
        JobState.CANCELLED, "Cancelled", 1, 0)
    assert not store.redis.sismember(RUNNING, job_id)
    assert 0 < store.redis.ttl(f"polyfit:job:{job_id}") <= 60
    thawed = store.fail(job_id, "attempt-1", JobError(type="Cancelled", message="late"), [])
    assert thawed is False and store.get(job_id).error.message.startswith("cancelled; its")


def test_the_reaper_reaps_any_number_of_lapsed_jobs_in_a_few_round_trips(redis_server,
                                                                          monkeypatch):
    """One pipeline for the leases' checks, one for the records, one for marking them sent
    (each pipeline of scripts checks them loaded first):
    a crashed sweep of thousands of members is not thousands of calls per worker per round."""
    from redis.connection import Connection

    from polyfit.store import JobStore
    from polyfit.store.keys import lease_key

    store = JobStore.from_url(redis_server.url, Settings(redis_url=redis_server.url))
    jobs = [store.create(SMALL) for _ in range(60)]
    for job_id in jobs:
        assert store.claim(job_id, "attempt-1", "w").outcome == "claimed"
        store.redis.delete(lease_key(job_id))
    store.reap()  # loads the scripts; the jobs are queued again, still in the running set
    for job_id in jobs:  # lapsed again
        assert store.claim(job_id, "attempt-2", "w").outcome == "claimed"
        store.redis.delete(lease_key(job_id))
    sent = []
    original = Connection.send_packed_command
    monkeypatch.setattr(Connection, "send_packed_command",
                        lambda self, *a, **k: (sent.append(1), original(self, *a, **k))[1])
    lapsed = store.reap()
    records = store.get_many(lapsed)
    store.requeued(lapsed)
    assert sorted(lapsed) == sorted(jobs) and len(records) == len(jobs)
    assert len(sent) <= 10, f"{len(sent)} round trips for {len(jobs)} lapsed jobs"
    assert all(record.state == JobState.QUEUED for record in store.get_many(jobs))


def test_a_sweep_delivered_again_while_its_members_run_elsewhere_keeps_its_record(
        redis_server, monkeypatch):
    """A second delivery of a sweep message finds every member leased by the batch running
    elsewhere: it runs nothing and leaves the sweep record without a TTL (it gave the sweep
    the result TTL, and ``sweep-result`` said "not found" for a running sweep). Once every
    member ended, a delivery expires it with them."""
    import polyfit.worker.service.app as service
    import polyfit.worker.service.sweep_tasks as sweep_tasks
    from polyfit.models.sweep import SweepRequest
    from polyfit.store import SweepStore
    from polyfit.store.keys import sweep_key

    settings = Settings(redis_url=redis_server.url, result_ttl=60)
    store = SweepStore.from_url(redis_server.url, settings)
    monkeypatch.setattr(service, "_store", store)
    sweep = SweepRequest(base=SMALL, learning_rates=[1e-6, 2e-6])
    sweep_id, member_ids = store.create_sweep(sweep)
    assert store.claim_members(member_ids, "batch-1", "w1") == ["claimed", "claimed"]
    sweep_tasks.run_sweep_job(sweep_id, "w2")
    assert store.redis.ttl(sweep_key(sweep_id)) == -1  # kept while its members run
    assert [s.value for s in store.member_states(member_ids)] == ["running", "running"]
    for job_id in member_ids:
        store.fail(job_id, "batch-1", JobError(type="Boom", message="ended"), [])
    sweep_tasks.run_sweep_job(sweep_id, "w2")
    assert 0 < store.redis.ttl(sweep_key(sweep_id)) <= 60


def test_jobs_of_a_purged_queue_are_sent_again_within_a_minute(redis_server, start_worker):
    """``celery purge`` (as Celery's docs teach) with three jobs queued and no worker: a
    worker started afterwards runs all three, within POLYFIT_ORPHAN_SECONDS (the default,
    60 s), each once. They stayed queued for good before."""
    import subprocess

    from conftest import BIN

    client = PolyfitClient(redis_server.url)
    jobs = [client.submit(SMALL) for _ in range(3)]
    purge = subprocess.run([str(BIN / "celery"), "-A", "polyfit.worker.service.app", "purge",
                            "-Q", "cpu", "-f"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "POLYFIT_REDIS_URL": redis_server.url})
    assert purge.returncode == 0 and "Purged 3 messages" in purge.stdout, purge.stderr
    purged_at = time.time()
    worker = start_worker(redis_server.url)
    for job_id in jobs:
        record = client.wait(job_id, timeout=75)
        assert record.state == JobState.SUCCEEDED and (record.attempts, record.requeues) == (1, 1)
        assert record.started_at - purged_at < 60
    assert "sent again 3 queued job(s) whose message was gone" in worker.log()


def test_messages_deleted_by_hand_are_sent_again(redis_server, start_worker):
    """A job and a sweep whose messages were deleted from Redis by hand: their records say
    queued, no message says so; ``orphans`` names them (and nothing while the messages
    wait), and a worker runs them, the sweep's members as single jobs."""
    from polyfit.models.sweep import SweepRequest

    client = PolyfitClient(redis_server.url)
    job_id = client.submit(SMALL)
    sweep_id = client.sweep(SweepRequest(base=SMALL, learning_rates=[1e-6, 2e-6]))
    members = client.store.member_ids(sweep_id)
    assert client.store.orphans(0) == []
    client.store.redis.delete("cpu")
    assert sorted(client.store.orphans(0)) == sorted([job_id, *members])
    start_worker(redis_server.url, env={"POLYFIT_ORPHAN_SECONDS": "4"})
    assert client.wait(job_id, timeout=60).state == JobState.SUCCEEDED
    assert client.wait_sweep(sweep_id, timeout=60).state == JobState.SUCCEEDED
    assert client.store.orphans(0) == []


BLOCKED_WORKER = """
import time
import polyfit.worker.service.tasks as tasks
tasks.run_fit = lambda *args, **kwargs: time.sleep(3600)  # stuck where no cancel reaches
from polyfit.worker.service.cli import main
main()
"""


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_a_fit_blocked_past_the_hard_limit_ends_its_in_process_pool_worker(
        redis_server, tmp_path, pool):
    """The solo and threads pools have no Celery hard limit: a fit blocked in a call that
    checks no cancel (a sleep standing in for a stuck kernel or lock) is failed "time limit
    exceeded (hard)" and the worker process exits 75 for its supervisor to restart it."""
    import subprocess
    import sys

    from polyfit.worker.service.watchdog import EXIT_HARD_LIMIT

    env = {**os.environ, "POLYFIT_REDIS_URL": redis_server.url, "CUDA_VISIBLE_DEVICES": "",
           "POLYFIT_SOFT_TIME_LIMIT": "1", "POLYFIT_HARD_TIME_LIMIT": "3",
           "POLYFIT_WARM_UP": "0"}
    log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-c", BLOCKED_WORKER, "--queues", "cpu",
                               "--pool", pool, "--concurrency", "1"], env=env,
                              stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    try:
        client = PolyfitClient(redis_server.url)
        job_id = client.submit(SMALL)
        with pytest.raises(JobFailed, match=r"time limit exceeded \(3 s, hard\)"):
            client.wait(job_id, timeout=90)
        assert worker.wait(30) == EXIT_HARD_LIMIT, log.read_text()
        assert "ran past the hard time limit" in log.read_text()
    finally:
        worker.kill()
        worker.wait()
