"""The HTTP API (``polyfit-api``) as a user meets it: a real Redis, a real worker, the API
served by uvicorn in its own process, called with httpx."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from conftest import FROM_FILE, OTHER, TOKEN, Api, cli
from polyfit.client.embedded import free_port
from polyfit.store.keys import events_channel

pytestmark = pytest.mark.integration

SMALL = {"approach": "numpy", "steps": 5, "seed": 1}
STREAMS = 60  # more than the 40 threads Starlette serves blocking endpoints from


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[Api]:
    service = Api(tmp_path_factory.mktemp("api"))
    yield service
    service.close()


def submit(api: Api, body: dict) -> str:
    response = api.http.post("/api/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()["job_id"]


def follow(api: Api, job_id: str) -> list[dict]:
    """The ``job`` events of the job's stream, until it closes."""
    documents = []
    with api.http.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "job":
                documents.append(json.loads(line.removeprefix("data: ")))
    return documents


def test_a_job_submitted_followed_and_read_back_as_the_cli_prints_it(api):
    job_id = submit(api, {"approach": "legendre", "steps": 60_000, "seed": 1,
                          "record_every": 1000})  # a few seconds
    documents = follow(api, job_id)
    assert documents[0]["state"] in ("queued", "running")
    assert documents[-1]["state"] == "succeeded"
    live = [d["progress"]["step"] for d in documents if d["state"] == "running" and d["progress"]]
    assert len(live) >= 2 and live == sorted(live)  # the progress, as it grew
    fetched = api.http.get(f"/api/jobs/{job_id}").json()
    printed = json.loads(cli("--redis-url", api.server.url, "status", job_id, "--json").stdout)
    assert fetched == printed == documents[-1]
    assert fetched["coefficients"] and fetched["expires_at"]


def test_tokens_are_required_except_for_health(api):
    assert httpx.get(f"{api.url}/api/jobs").status_code == 401
    wrong = httpx.get(f"{api.url}/api/jobs", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    from_file = httpx.get(f"{api.url}/api/jobs", headers={"Authorization": f"Bearer {FROM_FILE}"})
    assert from_file.status_code == 200
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok"}
    assert TOKEN not in api.log.read_text() and FROM_FILE not in api.log.read_text()


def test_bad_fields_are_named_with_422(api):
    response = api.http.post("/api/jobs", json={"approach": "cubic", "steps": -1})
    assert response.status_code == 422
    named = {tuple(error["loc"]) for error in response.json()["detail"]}
    assert ("body", "approach") in named
    too_many = api.http.post("/api/jobs", json={"approach": "tensor", "steps": 10**9})
    assert too_many.status_code == 422 and "steps" in too_many.text


def test_weighted_points_through_the_api(api):
    x = [0.0, 1.0, 2.0, 3.0, 4.0]
    y = [1.1, 2.9, 5.2, 6.8, 9.1]
    sigma = [0.1, 0.2, 0.1, 0.3, 0.2]
    job_id = submit(api, {"approach": "exact", "degree": 1, "absolute_sigma": True,
                          "data": {"x": x, "y": y, "sigma": sigma}})
    for _ in range(600):
        document = api.http.get(f"/api/jobs/{job_id}").json()
        if document["state"] == "succeeded":
            break
        time.sleep(0.05)
    statistics = document["statistics"]
    assert statistics["weighted"] and statistics["absolute_sigma"]
    assert statistics["chi_square"] == pytest.approx(document["final_loss"], rel=1e-12)
    refused = api.http.post("/api/jobs", json={"approach": "exact", "data": {
        "x": x, "y": y, "sigma": [0.1, 0.2, 0.0, 0.3, 0.2]}})
    assert refused.status_code == 422 and "point 2: sigma must be a positive" in refused.text
    orphan = api.http.post("/api/jobs", json={"approach": "exact", "absolute_sigma": True})
    assert orphan.status_code == 422 and "absolute_sigma: needs data" in orphan.text


def test_list_cancel_delete_and_unknown_ids(api):
    queued = [submit(api, {"approach": "dynamic", "steps": 1_000_000, "seed": 2})
              for _ in range(2)]  # the first runs for minutes, the second waits behind it
    cancelled = api.http.post(f"/api/jobs/{queued[1]}/cancel").json()
    assert cancelled == {"job_id": queued[1], "outcome": "cancelled"}
    listed = api.http.get("/api/jobs", params={"state": "cancelled", "approach": "dynamic"})
    assert [d["job_id"] for d in listed.json()] == [queued[1]]
    assert api.http.get("/api/jobs", params={"limit": 1}).json()[0]["job_id"] == queued[1]
    for job_id in queued:
        assert api.http.delete(f"/api/jobs/{job_id}").json()["outcome"] == "deleted"
        assert api.http.get(f"/api/jobs/{job_id}").status_code == 404
    assert api.http.delete(f"/api/jobs/{queued[0]}").status_code == 404
    missing = api.http.get(f"/api/jobs/{'0' * 32}/events")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]


def test_open_event_streams_leave_the_api_answering(api):
    """Every dashboard tab on a job page holds an event stream open: 60 streams on a queued
    job (no worker takes the cuda queue here) leave plain requests answered, and each
    stream still sends the job's end."""
    headers = {"Authorization": f"Bearer {FROM_FILE}"}
    job_id = submit(api, {"approach": "tensor", "steps": 5, "device": "cuda"})

    async def watch_and_ask() -> tuple[list[str], int, float]:
        async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=60) as http:
            async def follow(opened: asyncio.Event, ready: list[int]) -> str:
                async with http.stream("GET", f"/api/jobs/{job_id}/events") as stream:
                    state = ""
                    async for line in stream.aiter_lines():
                        if line.startswith("data: "):
                            state = json.loads(line.removeprefix("data: "))["state"]
                            ready.append(1)
                            if len(ready) == STREAMS:
                                opened.set()
                    return state

            opened, ready = asyncio.Event(), []
            streams = [asyncio.create_task(follow(opened, ready)) for _ in range(STREAMS)]
            await asyncio.wait_for(opened.wait(), 60)
            started = time.perf_counter()
            answer = await http.get(f"/api/jobs/{job_id}", timeout=10)
            took = time.perf_counter() - started
            await http.post(f"/api/jobs/{job_id}/cancel")
            return await asyncio.wait_for(asyncio.gather(*streams), 60), answer.status_code, took

    ends, status, took = asyncio.run(watch_and_ask())
    print(f"\nwith {STREAMS} event streams open, a job's document answered in {took * 1e3:.0f} ms")
    assert status == 200
    assert ends == ["cancelled"] * STREAMS
    assert subscribers(api, job_id) == 0

    left = submit(api, {"approach": "tensor", "steps": 5, "device": "cuda"})
    with httpx.stream("GET", f"{api.url}/api/jobs/{left}/events", headers=headers) as stream:
        lines = stream.iter_lines()  # open until the block ends (a break would close it)
        next(line for line in lines if line.startswith("data: "))
        assert subscribers(api, left) == 1
    deadline = time.monotonic() + 30  # a browser that went away: its subscription goes too
    while subscribers(api, left):
        assert time.monotonic() < deadline, "a closed stream kept its Redis subscription"
        time.sleep(0.1)
    api.http.post(f"/api/jobs/{left}/cancel")


def subscribers(api: Api, job_id: str) -> int:
    [(_, count)] = redis.Redis.from_url(api.server.url).pubsub_numsub(events_channel(job_id))
    return count


def test_a_sweep_through_the_api(api):
    response = api.http.post("/api/sweeps", json={"base": SMALL, "learning_rates": [1e-6, 2e-6]})
    assert response.status_code == 201, response.text
    sweep_id = response.json()["sweep_id"]
    deadline = time.monotonic() + 60
    while (sweep := api.http.get(f"/api/sweeps/{sweep_id}").json())["state"] != "succeeded":
        assert time.monotonic() < deadline, sweep
        time.sleep(0.2)
    assert len(sweep["members"]) == 2 and sweep["best"]["final_loss"] is not None
    assert api.http.get(f"/api/sweeps/{'0' * 32}").status_code == 404


def test_limits_body_size_and_requests_per_minute(api):
    huge = {"approach": "tensor", "data": {"x": [0.0] * 20_000, "y": [0.0] * 20_000}}
    assert api.http.post("/api/jobs", json=huge).status_code == 413
    other = {"Authorization": f"Bearer {OTHER}"}
    codes = [httpx.get(f"{api.url}/api/jobs", params={"limit": 1}, headers=other).status_code
             for _ in range(101)]
    assert codes[:100] == [200] * 100 and codes[100] == 429
    assert api.http.get("/api/jobs", params={"limit": 1}).status_code == 200  # its own budget


def test_choices_come_from_the_model_types(api):
    from typing import get_args

    from polyfit.models.curves import TARGETS
    from polyfit.models.request import Approach, Optimizer

    choices = api.http.get("/api/choices").json()
    assert choices["target"] == list(TARGETS) and choices["approach"] == list(get_args(Approach))
    assert choices["optimizer"] == list(get_args(Optimizer))
    assert choices["state"] == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert httpx.get(f"{api.url}/api/choices").status_code == 401


def test_points_are_read_from_csv_as_the_cli_reads_them(api):
    def read(body: bytes) -> httpx.Response:
        return api.http.post("/api/points", content=body, headers={"Content-Type": "text/csv"})

    assert read(b"x,y,sigma\n0,1,0.5\n1,3,0.25\n").json() == {
        "x": [0.0, 1.0], "y": [1.0, 3.0], "sigma": [0.5, 0.25]}
    refused = read(b"0,1\n1,2\n2,nan\n")
    assert refused.status_code == 400
    assert refused.json()["detail"] == "data: the file line 3: values must be finite"
    assert read(b"0,1\n").json()["detail"] == ("data: the file has 1 point(s); a fit needs "
                                                "at least 2")
    assert read(b"\xff\xfe0,1\n").json()["detail"] == "data: the file is not a text CSV file"


def test_openapi_docs_are_served(api):
    assert api.http.get("/docs").status_code == 200
    paths = api.http.get("/openapi.json").json()["paths"]
    assert {"/api/jobs", "/api/jobs/{job_id}/events", "/api/sweeps"} <= set(paths)


def test_metrics_read_with_prometheus_parser(api):
    """After the jobs above: counters by approach and state, the fit-seconds histogram, queue
    depth, running jobs and the worker's heartbeat, in Prometheus' text format."""
    from prometheus_client.parser import text_string_to_metric_families

    assert httpx.get(f"{api.url}/metrics").status_code == 401
    response = api.http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text)
               for s in family.samples}
    assert samples[("polyfit_jobs_total", (("approach", "legendre"), ("state", "succeeded")))] >= 1
    assert samples[("polyfit_jobs_total", (("approach", "dynamic"), ("state", "cancelled")))] >= 1
    assert samples[("polyfit_jobs_submitted_total", (("approach", "numpy"),))] >= 2
    assert samples[("polyfit_sweep_members_total", (("approach", "numpy"),))] == 2
    fits = (("approach", "legendre"), ("device", "cpu"))
    assert samples[("polyfit_fit_seconds_count", fits)] >= 1
    assert samples[("polyfit_fit_seconds_bucket", (*fits, ("le", "+Inf")))] >= 1
    assert ("polyfit_queue_depth", (("queue", "cpu"),)) in samples
    assert ("polyfit_jobs_running", ()) in samples
    ages = [v for (name, _), v in samples.items()
            if name == "polyfit_worker_heartbeat_age_seconds"]
    assert ages and min(ages) < 30


@pytest.mark.skipif(not shutil.which("prometheus"),
                    reason="needs Debian's prometheus: run scripts/install-test-tools")
def test_a_real_prometheus_scrapes_the_metrics(api, tmp_path):
    """Prometheus with a scrape config for the API (the bearer token in it) and the worker's
    own port finds both targets up and answers queries on their counters."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: polyfit
    authorization: {{credentials: {TOKEN}}}
    static_configs: [{{targets: ['{api.url.removeprefix("http://")}']}}]
  - job_name: polyfit-workers
    static_configs: [{{targets: ['{api.worker_metrics}']}}]
""")
    server = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=open(tmp_path / "prometheus.log", "ab"), stderr=subprocess.STDOUT)
    try:
        query = f"http://127.0.0.1:{port}/api/v1/query"
        deadline = time.monotonic() + 90
        for counter in ("polyfit_jobs_submitted_total", "polyfit_worker_jobs_total"):
            while True:
                try:
                    answer = httpx.get(query, params={"query": f"sum({counter})"})
                    found = answer.json()["data"]["result"] if answer.status_code == 200 else []
                except httpx.TransportError:
                    found = []
                if found:
                    break
                assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
                assert time.monotonic() < deadline, f"Prometheus never scraped {counter}"
                time.sleep(0.5)
            assert float(found[0]["value"][1]) >= 1
        for job in ("polyfit", "polyfit-workers"):
            up = httpx.get(query, params={"query": f'up{{job="{job}"}}'}).json()["data"]["result"]
            assert up[0]["value"][1] == "1", job
    finally:
        server.terminate()
        server.wait(30)
