"""Bad input: every request, option, data file or raw queue message is either taken or refused
with a clear reason; nothing half-queued, no traceback, no worker stopped."""

from __future__ import annotations

import io
import json
import math
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from conftest import Worker, cli, envelope
from polyfit.client import PolyfitClient
from polyfit.client.cli import main
from polyfit.client.embedded import EmbeddedRedis
from polyfit.client.status import ExitStatus
from polyfit.models import APPROACHES, FitRequest, JobState, messages
from polyfit.models.request import describe
from polyfit.store.keys import JOBS, job_key

FIELDS = set(FitRequest.model_fields)

# --- FitRequest JSON ---------------------------------------------------------------------

junk = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4),
    st.dictionaries(st.sampled_from(["x", "y", "z"]),
                    st.lists(st.floats(-10, 10), max_size=5), max_size=3),
)
plausible = {
    "approach": st.sampled_from(APPROACHES),
    "target": st.sampled_from(["sin", "cos", "exp", "tanh", "__import__('os')"]),
    "device": st.sampled_from(["cpu", "cuda", "auto", "tpu"]),
    "dtype": st.sampled_from(["float32", "float64", "int8"]),
    "optimizer": st.sampled_from(["sgd", "rmsprop", "adam", "lbfgs"]),
    "steps": st.integers(-5, 2_000_000), "degree": st.integers(-1, 12),
    "n_points": st.integers(0, 200_000), "record_every": st.integers(-1, 1000),
    "seed": st.integers(-1, 2**64), "learning_rate": st.floats(-1, 1e3),
    "momentum": st.floats(-0.5, 1.5), "x_min": st.floats(-1e6, 1e6),
    "x_max": st.floats(-1e6, 1e6),
    "data": st.fixed_dictionaries({"x": st.lists(st.floats(-5, 5), max_size=6),
                                   "y": st.lists(st.floats(-5, 5), max_size=6)},
                                  optional={"sigma": st.lists(st.floats(-1, 5), max_size=6)}),
    "absolute_sigma": st.booleans(),
}


@st.composite
def request_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object with mostly FitRequest fields, mostly plausible values, some junk."""
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=8, unique=True))
    document = {name: draw(junk if draw(st.integers(0, 5)) == 0 else plausible[name])
                for name in names}
    if draw(st.integers(0, 4)):
        document["approach"] = draw(plausible["approach"])
    if draw(st.integers(0, 9)) == 0:
        # printable: describe() echoes an unknown key as is, so a "\n" key would split the line
        document[draw(st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
                              max_size=8))] = draw(junk)
    return document


def names_a_field(error: dict[str, Any], document: dict[str, Any]) -> bool:
    where = error["loc"]
    if where:
        return str(where[0]) in FIELDS | set(document)
    return any(name in error["msg"] for name in FIELDS)


@settings(max_examples=300, deadline=None)
@given(document=request_documents())
def test_request_json_is_taken_or_refused_naming_the_field(document):
    text = json.dumps(document)  # NaN and Infinity as Python writes them, as a raw sender may
    try:
        request = FitRequest.model_validate(json.loads(text))
    except ValidationError as error:
        event("refused")
        message = describe(error)
        assert message and "\n" not in message
        for item in error.errors():
            assert names_a_field(item, document), item
        return
    event("accepted")
    wire = request.model_dump(mode="json")
    json.dumps(wire, allow_nan=False)  # what the client sends is strict JSON
    assert FitRequest.model_validate(wire) == request  # and the worker takes it as is


# --- the CLI's options ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def idle_redis(tmp_path_factory) -> Iterator[EmbeddedRedis]:
    """A Redis with no worker: what is accepted stays queued, to be counted."""
    server = EmbeddedRedis(directory=tmp_path_factory.mktemp("idle-redis")).start()
    yield server
    server.stop()


def queued(url: str) -> int:
    """Jobs recorded plus messages waiting, in all queues."""
    r = redis.Redis.from_url(url)
    return r.zcard(JOBS) + r.llen("cpu") + r.llen("cuda")


def run_main(*args: str) -> tuple[int, str, str]:
    """``polyfit-client ARGS`` through its entry point, in this process."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with patch.object(sys, "argv", ["polyfit-client", *args]), redirect_stdout(out), \
            redirect_stderr(err):
        try:
            main()
        except SystemExit as done:
            code = done.code
    return code, out.getvalue(), err.getvalue()


text_value = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=10)
number = st.one_of(st.integers(-(2**70), 2**70).map(str), text_value)
real = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), text_value)
OPTIONS = {
    "approach": st.one_of(st.sampled_from(APPROACHES), text_value),
    "steps": number, "degree": number, "n-points": number, "record-every": number,
    "seed": number, "learning-rate": real, "x-min": real, "x-max": real,
    "device": st.one_of(st.sampled_from(["cpu", "cuda", "auto"]), text_value),
    "target": st.one_of(st.sampled_from(["sin", "cos", "exp", "tanh"]), text_value),
    "optimizer": st.one_of(st.sampled_from(["sgd", "rmsprop", "adam"]), text_value),
    "dtype": st.one_of(st.sampled_from(["float32", "float64"]), text_value),
}


@st.composite
def submit_options(draw: st.DrawFn) -> dict[str, str]:
    names = draw(st.lists(st.sampled_from(sorted(OPTIONS)), max_size=5, unique=True))
    chosen = {name: draw(OPTIONS[name]) for name in names}
    if draw(st.integers(0, 4)):
        chosen["approach"] = draw(st.sampled_from(APPROACHES))
    return chosen


@pytest.mark.integration
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options=submit_options())
def test_submit_options_are_taken_or_refused_with_exit_2_naming_the_option(idle_redis, options):
    before = queued(idle_redis.url)
    args = [f"--{name}={value}" for name, value in options.items()]
    code, out, err = run_main("--redis-url", idle_redis.url, "submit", *args)
    event(f"exit {code}")
    if code == ExitStatus.SUCCESS:
        job_id = out.strip()
        assert PolyfitClient(idle_redis.url).status(job_id).state == JobState.QUEUED
        assert queued(idle_redis.url) == before + 2
        return
    assert code == ExitStatus.INVALID_REQUEST, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    named = {"approach"} | {n for name in options for n in (name, name.replace("-", "_"))}
    assert any(name in err for name in named), (options, err)
    assert queued(idle_redis.url) == before


@pytest.mark.integration
@pytest.mark.parametrize(("args", "field"), [
    (["--approach", "numpy", "--steps", "-1"], "steps"),
    (["--approach", "bogus"], "--approach"),
    (["--approach", "legendre", "--learning-rate", "nan"], "learning_rate"),
    (["--approach", "numpy", "--target", "__import__('os').system('id')"], "--target"),
    (["--approach", "exact", "--steps", "10"], "steps"),
    (["--steps", "10"], "approach"),
])
def test_the_binary_refuses_bad_options_with_exit_2(idle_redis, args, field):
    before = queued(idle_redis.url)
    done = cli("--redis-url", idle_redis.url, "submit", *args)
    assert done.returncode == ExitStatus.INVALID_REQUEST and field in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert queued(idle_redis.url) == before


# --- CSV data files ------------------------------------------------------------------------

BAD_CSV = {
    "missing value": ("x,y\n1,2\n3,\n4,5\n", "line 3: not a number"),
    "text": ("1,2\n3,four\n", "line 2: not a number"),
    "mismatched columns": ("1,2\n3,4,5\n", "line 2: expected 2 columns"),
    "one column": ("1\n2\n", "line 1: expected 2 columns"),
    "single point": ("x,y\n1,2\n", "has 1 point(s); a fit needs at least 2"),
    "empty": ("", "has 0 point(s)"),
    "infinite": ("1,2\n2,inf\n", "line 2: values must be finite"),
    "one distinct x": ("1,2\n1,3\n", "x needs at least two distinct values"),
    "binary": (b"\x89PNG\r\n\x1a\n\xff\xfe", "not a text CSV file"),
    "million rows": (None, "has more than 100000 points"),
    "zero sigma": ("x,y,sigma\n1,2,0.1\n2,3,0\n", "line 3: sigma must be positive, not 0"),
    "negative sigma": ("1,2,-0.5\n2,3,1\n", "line 1: sigma must be positive, not -0.5"),
    "nan sigma": ("1,2,1\n2,3,nan\n", "line 2: values must be finite"),
    "sigma on some rows": ("1,2,0.1\n2,3\n", "line 2: expected 3 columns like the first row"),
}


def write_csv(path: Path, content: str | bytes | None) -> None:
    if content is None:
        with open(path, "w") as handle:
            handle.writelines(f"{i * 1e-6},{math.sin(i * 1e-6)}\n" for i in range(1_000_000))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


@pytest.mark.integration
@pytest.mark.parametrize("case", BAD_CSV)
def test_bad_csv_is_refused_before_anything_is_queued(idle_redis, tmp_path, case):
    content, reason = BAD_CSV[case]
    path = tmp_path / "points.csv"
    write_csv(path, content)
    before = queued(idle_redis.url)
    done = cli("--redis-url", idle_redis.url, "submit", "--approach", "numpy",
               "--data", str(path))
    assert done.returncode == ExitStatus.INVALID_REQUEST, done.stderr
    assert done.stderr.startswith("error: data") and reason in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert queued(idle_redis.url) == before


# --- raw messages pushed onto the queue, bypassing the client -------------------------------

def task_body(args: list[Any]) -> bytes:
    return json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None,
                                  "chord": None}]).encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[PolyfitClient, Worker, redis.Redis]]:
    """Redis and one worker for all raw-message tests."""
    directory = tmp_path_factory.mktemp("raw")
    server = EmbeddedRedis(directory=directory / "redis").start()
    worker = Worker(server.url, directory / "worker.log",
                    env={"POLYFIT_LEASE_SECONDS": "2"}).wait_ready()
    yield PolyfitClient(server.url), worker, redis.Redis.from_url(server.url)
    worker.stop()
    server.stop()


def push(client: PolyfitClient, r: redis.Redis, kind: str, job_id: str) -> None:
    """Send one kind of bad message about ``job_id``."""
    send = client.celery.send_task
    if kind == "not JSON":
        r.lpush("cpu", b"\x00not json at all")
    elif kind == "envelope without fields":
        r.lpush("cpu", json.dumps({"headers": {"id": job_id}}))
    elif kind == "body not JSON":
        r.lpush("cpu", envelope(b"{[not json", job_id))
    elif kind == "body not a task":
        r.lpush("cpu", envelope(b"42", job_id))
    elif kind == "no arguments":  # the task id names the job
        send(messages.FIT, args=[], task_id=job_id, queue="cpu")
    elif kind == "a request in the message":  # as clients before 0.2 sent: the record's runs
        send(messages.FIT, args=[job_id, {"approach": "rm -rf /"}], task_id=job_id,
             queue="cpu")
    elif kind == "extra arguments":
        send(messages.FIT, args=[job_id, {"approach": "numpy"}, 1, 2], kwargs={"x": 1},
             task_id=job_id, queue="cpu")
    elif kind in STORED:  # the record holds the request's only copy: a bad one there
        r.hset(job_key(job_id), "request", STORED[kind])
        send(messages.FIT, args=messages.arguments(job_id), task_id=job_id, queue="cpu")
    elif kind == "50 MB body":
        r.lpush("cpu", envelope(task_body([job_id, {"approach": "numpy",
                                                    "target": "x" * 50_000_000}]), job_id))
    elif kind == "unknown task name":
        send("polyfit.nope", args=messages.arguments(job_id), task_id=job_id, queue="cpu")
    elif kind.startswith("time limit"):
        limits = {"time limit not numbers": ["x", "y"], "time limit one number": 7,
                  "time limit negative": [-1, -1]}[kind]
        r.lpush("cpu", envelope(task_body([job_id, {"approach": "numpy", "steps": 5}]), job_id,
                                timelimit=limits))
    elif kind == "job id also a keyword":
        send(messages.FIT, args=[job_id], kwargs={"job_id": job_id, "request": {
            "approach": "numpy", "steps": 5}}, task_id=job_id, queue="cpu")


STORED = {  # a record's request that no worker may run
    "unknown approach": json.dumps({"approach": "rm -rf /"}),
    "NaN in data": json.dumps({"approach": "numpy", "data": {"x": [0, 1, math.nan],
                                                             "y": [1, 2, 3]}}),
    "too many points": json.dumps({"approach": "numpy", "data": {
        "x": list(range(200_000)), "y": list(range(200_000))}}),
    "request not JSON": "approach=numpy",
}
RUNS = ("no arguments", "a request in the message", "extra arguments", "50 MB body",
        "job id also a keyword")  # the job runs the request its record holds
RAW = {  # kind: what the job's record says (None: the message names no job to fail)
    "not JSON": None,
    "envelope without fields": None,
    "body not JSON": "refused a message whose body cannot be decoded",
    "body not a task": "refused a malformed message",
    "no arguments": None,
    "a request in the message": None,
    "extra arguments": None,
    "unknown approach": "approach: Input should be",
    "NaN in data": "data.x: must be finite numbers",
    "too many points": "data.x: has 200000 points, more than the limit 100000",
    "request not JSON": "the stored record is not valid",  # as read back; the worker went on
    "50 MB body": None,
    "unknown task name": "refused a message for unknown task 'polyfit.nope'",
    # Celery's pool arms timers with these in the worker's main process: strings stopped the
    # worker, a single number took its pool slot for good
    "time limit not numbers": "timelimit must be [hard, soft] positive seconds or nulls",
    "time limit one number": "timelimit must be [hard, soft] positive seconds or nulls",
    "time limit negative": "timelimit must be [hard, soft] positive seconds or nulls",
    "job id also a keyword": None,
}


@pytest.mark.integration
@pytest.mark.parametrize("kind", RAW)
def test_raw_message_is_refused_and_the_worker_carries_on(stack, kind):
    client, worker, r = stack
    job_id = client.store.create(FitRequest(approach="numpy", steps=5))  # known, never sent
    push(client, r, kind, job_id)

    after = client.wait(client.submit(FitRequest(approach="numpy", steps=5)), timeout=120)

    assert after.state == JobState.SUCCEEDED and worker.alive()
    record = client.status(job_id)
    if kind in RUNS:
        assert record.state == JobState.SUCCEEDED
    elif RAW[kind] is None:
        assert record.state == JobState.QUEUED
    else:
        assert record.state == JobState.FAILED and RAW[kind] in record.error.message, record
    assert r.llen("cpu") == 0


@pytest.mark.integration
def test_queue_flood_of_junk_leaves_the_worker_consuming(stack):
    client, worker, r = stack
    started = time.monotonic()
    r.lpush("cpu", *[f"junk {i}".encode() for i in range(500)])
    assert client.wait(client.submit(FitRequest(approach="numpy", steps=5)),
                       timeout=120).state == JobState.SUCCEEDED
    print(f"500 junk items dropped and one job run in {time.monotonic() - started:.2f} s")
    assert worker.alive()
