"""Security: a password-protected Redis end to end, wrong credentials refused clearly, pickled
messages refused rather than executed, targets never evaluated."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conftest import ROOT, Worker, cli, envelope
from polyfit.client import PolyfitClient
from polyfit.client.embedded import EmbeddedRedis, free_port, redis_server_binary
from polyfit.client.status import ExitStatus
from polyfit.models import FitRequest, JobState, messages
from polyfit.models.sweep import SweepRequest
from polyfit.store.keys import job_key

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
    assert done.returncode == ExitStatus.SUCCESS, done.stderr
    document = json.loads(done.stdout)
    assert document["state"] == "succeeded" and document["coefficients"]


@pytest.mark.parametrize("password", ["wrong-password", None])
def test_wrong_or_missing_password_exits_4_with_a_clear_message(stack, password):
    before = stack.redis.zcard("polyfit:jobs")
    for args in (["status", "x"], ["submit", "--approach", "numpy"]):
        done = cli("--redis-url", stack.url(password), *args)
        assert done.returncode == ExitStatus.REDIS_UNAVAILABLE, done.stderr
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
    stack.redis.hset(job_key(job_id), "request", json.dumps({"approach": "numpy",
                                                              "target": expression}))
    stack.client.celery.send_task(messages.FIT, args=messages.arguments(job_id),
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


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signed for 127.0.0.1: (ca, cert, key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    directory.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "1", "-subj", "/CN=polyfit test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext")
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


@pytest.fixture
def tls_redis(tmp_path) -> Iterator[tuple[int, Path]]:
    """A redis-server that speaks TLS only, with a certificate from a throwaway CA:
    (port, CA file)."""
    if not shutil.which("openssl"):
        pytest.skip("needs openssl to make the certificates")
    ca, cert, key = make_certificates(tmp_path / "tls")
    port = free_port()
    server = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
         str(ca), "--tls-auth-clients", "no", "--save", "", "--dir", str(tmp_path)],
        stdout=open(tmp_path / "redis.log", "ab"), stderr=subprocess.STDOUT)
    probe = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(ca))
    try:
        for _ in range(100):
            if server.poll() is not None:
                log = (tmp_path / "redis.log").read_text()[-300:]
                pytest.skip(f"this redis-server has no TLS: {log}")
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield port, ca
    finally:
        server.terminate()
        server.wait(10)


def test_redis_over_tls_for_client_worker_and_broker(tls_redis, start_worker):
    """A ``rediss://`` URL with ``ssl_ca_certs`` carries the client, the worker and Celery's
    broker; without the CA the certificate check refuses, with a hint (exit 4)."""
    port, ca = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    start_worker(url)
    client = PolyfitClient(url)
    record = client.wait(client.submit(FitRequest(approach="numpy", steps=5)), timeout=90)
    assert record.state == JobState.SUCCEEDED
    done = cli("--redis-url", f"rediss://127.0.0.1:{port}/0", "list")
    assert done.returncode == ExitStatus.REDIS_UNAVAILABLE, done.stderr
    assert "ssl_ca_certs=PATH" in done.stderr, done.stderr


def test_acl_users_of_security_md(tmp_path, start_worker):
    """The ACL lines of docs/SECURITY.md, run as written: the worker user runs jobs and
    sweeps; the client user submits, reads, cancels, deletes and prunes, and is refused
    FLUSHALL, CONFIG, KEYS and keys outside polyfit's."""
    lines = [line.replace("CLIENT_PASSWORD", "client-pw").replace("WORKER_PASSWORD", "worker-pw")
             for line in (ROOT / "docs" / "SECURITY.md").read_text().splitlines()
             if line.startswith("ACL SETUSER ")]
    assert len(lines) == 3
    server = EmbeddedRedis(directory=tmp_path / "redis").start()
    try:
        admin = redis.Redis(port=server.port)
        for line in lines:
            admin.execute_command(*line.split())
        base = f"127.0.0.1:{server.port}/0"
        start_worker(f"redis://polyfit-worker:worker-pw@{base}")
        url = f"redis://polyfit-client:client-pw@{base}"
        client = PolyfitClient(url)
        job_id = client.submit(FitRequest(approach="numpy", steps=5))
        assert client.wait(job_id, timeout=90).state == JobState.SUCCEEDED
        sweep_id = client.sweep(SweepRequest(base=FitRequest(approach="numpy", steps=5),
                                             learning_rates=[1e-6, 2e-6]))
        assert client.wait_sweep(sweep_id, timeout=60).state == JobState.SUCCEEDED
        endless = client.submit(FitRequest(approach="dynamic", steps=1_000_000))
        assert client.cancel(endless) in ("cancelled", "requested")
        assert client.delete([endless])[endless] in ("cancelled", "running")
        for args in (["list"], ["status", job_id], ["prune", "--older-than", "0s"],
                     ["sweep-delete", sweep_id]):
            done = cli("--redis-url", url, *args)
            assert done.returncode == ExitStatus.SUCCESS, done.stderr
        as_client = redis.Redis.from_url(url)
        for command in (["FLUSHALL"], ["CONFIG", "GET", "maxmemory"], ["KEYS", "*"],
                        ["SET", "not-polyfit", "1"], ["GET", "not-polyfit"]):
            with pytest.raises(redis.exceptions.NoPermissionError):
                as_client.execute_command(*command)
    finally:
        server.stop()
