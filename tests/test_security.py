"""Security: a password-protected Redis end to end, wrong credentials refused clearly, pickled
messages refused rather than executed, targets never evaluated."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conftest import Worker, cli, envelope
from polyfit.client import PolyfitClient
from polyfit.client.embedded import EmbeddedRedis
from polyfit.models import FitRequest, JobState

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-polyfit"


class Stack:
    """A password-protected Redis, one worker and a client, shared by this module's tests."""

    def __init__(self, directory: Path) -> None:
        self.server = EmbeddedRedis(directory=directory / "redis", password=PASSWORD).start()
        self.worker = Worker(self.server.url, directory / "worker.log")
        self.client = PolyfitClient(self.server.url)
        self.redis = redis.Redis.from_url(self.server.url)

    def url(self, password: str | None) -> str:
        auth = f":{password}@" if password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.server.port}/0"

    def run_one(self) -> None:
        """A normal job succeeds: the worker is alive and consuming."""
        record = self.client.wait(self.client.submit(FitRequest(approach="numpy", steps=5)),
                                  timeout=120)
        assert record.state == JobState.SUCCEEDED and self.worker.alive()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("secure"))
    yield stack
    stack.worker.stop()
    stack.server.stop()


def test_password_protected_stack_runs_a_job_end_to_end(stack):
    done = cli("--redis-url", stack.url(PASSWORD), "submit", "--approach", "legendre",
               "--steps", "200", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["state"] == "succeeded" and document["coefficients"]


@pytest.mark.parametrize("password", ["wrong-password", None])
def test_wrong_or_missing_password_exits_4_with_a_clear_message(stack, password):
    before = stack.redis.zcard("polyfit:jobs")
    for args in (["status", "x"], ["submit", "--approach", "numpy"]):
        done = cli("--redis-url", stack.url(password), *args)
        assert done.returncode == 4, done.stderr
        assert "refused the credentials" in done.stderr and "POLYFIT_REDIS_URL" in done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "wrong-password" not in done.stderr  # the URL is shown without its password
    assert stack.redis.zcard("polyfit:jobs") == before


class Payload:
    """Creates ``marker`` if it is ever unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickled_message(job_id: str, marker: Path, content_type: str) -> str:
    """A Celery message whose body is a pickle that would touch ``marker`` when loaded."""
    body = pickle.dumps(((job_id, Payload(marker)), {}, {}))
    return envelope(body, job_id, content_type=content_type, content_encoding="binary")


@pytest.mark.parametrize(("content_type", "reason"), [
    ("application/x-python-serialize", "Refusing to deserialize untrusted content of type pickle"),
    ("application/json", "cannot be decoded"),  # a pickle that claims to be JSON
], ids=["pickle", "pickle-as-json"])
def test_pickled_message_is_refused_not_executed(stack, tmp_path, content_type, reason):
    marker = tmp_path / "unpickled"
    job_id = stack.client.store.create(FitRequest(approach="numpy", steps=5))
    stack.redis.lpush("cpu", pickled_message(job_id, marker, content_type))

    stack.run_one()

    assert not marker.exists()
    record = stack.client.status(job_id)
    assert record.state == JobState.FAILED and reason in record.error.message, record.error


def test_target_expression_is_never_evaluated(stack, tmp_path):
    marker = tmp_path / "evaluated"
    expression = f"__import__('pathlib').Path('{marker}').touch() or 'sin'"
    job_id = stack.client.store.create(FitRequest(approach="numpy", steps=5))
    stack.client.celery.send_task("polyfit.fit", args=[job_id, {"approach": "numpy",
                                                                "target": expression}],
                                  task_id=job_id, queue="cpu")
    stack.run_one()
    record = stack.client.status(job_id)
    assert record.state == JobState.FAILED and "target: Input should be" in record.error.message
    assert not marker.exists()


def test_worker_and_client_accept_json_only():
    from polyfit.worker.service.app import app

    client = PolyfitClient("redis://127.0.0.1:1/0")
    for conf in (app.conf, client.celery.conf):
        assert conf.accept_content == ["json"] and conf.task_serializer == "json"
