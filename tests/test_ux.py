"""What people see: the progress bar in a terminal, plain lines without one, --quiet, plots,
CSV export, the job table, and one-line errors. Drives the real ``polyfit-client`` binary
against a real redis-server and worker shared by the module."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image, ImageStat

from conftest import BIN, ROOT, Worker, cli
from polyfit.client import PolyfitClient
from polyfit.client.embedded import EmbeddedRedis, free_port
from polyfit.client.plot import draw_sweep
from polyfit.client.status import ExitStatus
from polyfit.models import FitRequest, JobState
from polyfit.models.curves import evaluate, sample
from polyfit.models.least_squares import fit_polynomial
from polyfit.models.sweep import SweepMember, SweepRecord, SweepRequest

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
PART_WAY = re.compile(r"[1-9]\d*/1000000 steps +\d+%")  # a bar part way through a long job


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis with one cpu worker, for the whole module."""
    directory = tmp_path_factory.mktemp("ux")
    server = EmbeddedRedis(directory=directory / "redis").start()
    worker = Worker(server.url, directory / "worker.log", name="ux").wait_ready()
    yield server.url
    worker.stop()
    server.stop()


@pytest.fixture(scope="module")
def jobs(url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Finished jobs by name: one per kind of model, one on user data, one diverged."""
    points = tmp_path_factory.mktemp("data") / "points.csv"
    x = np.linspace(-2, 2, 40)
    points.write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in zip(x, x**3 - x, strict=True)))
    requests = {
        "legendre": {"approach": "legendre", "steps": 1500, "seed": 1},
        "optim": {"approach": "optim", "steps": 1000, "seed": 2},
        "dynamic": {"approach": "dynamic", "steps": 2000, "record_every": 100, "seed": 3},
        "exact": {"approach": "exact"},
        "data": {"approach": "numpy", "steps": 500, "learning_rate": 1e-4, "seed": 4,
                 "data": {"x": x.tolist(), "y": (x**3 - x).tolist()}},
        "diverged": {"approach": "legendre", "learning_rate": 1.0, "seed": 5},
    }
    client = PolyfitClient(url)
    ids = {name: client.submit(FitRequest(**fields)) for name, fields in requests.items()}
    for job_id in ids.values():
        while not client.status(job_id).state.finished:
            time.sleep(0.1)
    return ids


def env(url: str) -> dict[str, str]:
    return {"POLYFIT_REDIS_URL": url}


def in_terminal(args: list[str], environment: dict[str, str],
                until: Callable[[str], bool] | None = None,
                then: Callable[[subprocess.Popen], None] | None = None,
                timeout: float = 120) -> tuple[int, str]:
    """Run ``polyfit-client`` in a 120-column pseudo-terminal; returns (exit code, output
    without colour codes). When ``until`` first holds for the output so far, ``then`` runs.
    The program starts with Ctrl-C's default meaning, as from a terminal, even when this
    test runs where SIGINT is ignored (a shell's background job), which it would inherit."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [str(BIN / "polyfit-client"), *args], stdin=slave, stdout=slave, stderr=slave,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **environment},
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the program exited
                break
            if not chunk:
                break
            output += chunk
            if until is not None and until(ANSI.sub("", output.decode(errors="replace"))):
                then(process)
                until = None
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return code, ANSI.sub("", output.decode(errors="replace"))


# --- progress -------------------------------------------------------------------------------

def test_terminal_shows_a_bar_that_ends_at_100_percent(url: str) -> None:
    code, output = in_terminal(["submit", "--approach", "legendre", "--steps", "2000",
                                "--record-every", "50", "--seed", "7", "--wait"], env(url))
    assert code == ExitStatus.SUCCESS, output
    assert "━" in output  # the bar itself
    assert re.search(r"legendre succeeded .*2000/2000 steps 100% loss [\d.]+ .* on cpu \(ux-",
                     output)
    assert "Result: y = " in output
    job_id = output.split()[0]
    code, output = in_terminal(["wait", job_id], env(url))
    assert code == ExitStatus.SUCCESS and "2000/2000 steps 100%" in output


def test_interrupting_wait_in_a_terminal_says_how_to_go_on(url: str) -> None:
    """The job is mid-fit (a progress record) before `wait` starts, and ~10⁶ steps from its
    end: the interrupt lands part way whatever the machine's load."""
    client = PolyfitClient(url)
    job_id = client.submit(FitRequest(approach="legendre", steps=10**6, seed=8))
    try:
        deadline = time.monotonic() + 120
        while (record := client.status(job_id)).progress is None:
            assert time.monotonic() < deadline and not record.state.finished, record
            time.sleep(0.05)
        code, output = in_terminal(
            ["wait", job_id], env(url), until=lambda text: PART_WAY.search(text) is not None,
            then=lambda process: process.send_signal(signal.SIGINT))
    finally:
        client.cancel(job_id)
    assert code == ExitStatus.INTERRUPTED, output
    assert f"stopped waiting; job {job_id} goes on" in output
    assert "Traceback" not in output


def test_status_of_a_finished_job_shows_how_it_ended(url: str, jobs: dict[str, str]) -> None:
    done = cli("status", jobs["legendre"], env=env(url))
    assert re.match(rf"{jobs['legendre']} succeeded \(legendre\) after 1500 steps, final loss "
                    r"[\d.]+ on cpu", done.stdout), done.stdout
    failed = cli("status", jobs["diverged"], env=env(url)).stdout
    assert failed.startswith(f"{jobs['diverged']} failed (legendre)") and "Diverged" in failed


def test_sweep_progress_lines_drop_the_step_once_every_member_ended(capsys) -> None:
    from polyfit.client.sweep_view import SweepProgress

    show = SweepProgress("s1")
    progress = {"step": 99, "steps": 300, "best_loss": 277.123, "active": 6}
    show({"running": 6}, progress)
    show({"succeeded": 6}, progress)  # the batch's last progress, written before it ended
    first, last = capsys.readouterr().err.splitlines()
    assert first.startswith("sweep s1: 6 running; step 100/300, best loss 277.123")
    assert last.startswith("sweep s1: 6 succeeded (")


def test_without_a_terminal_progress_is_plain_lines_on_stderr(url: str) -> None:
    done = cli("submit", "--approach", "legendre", "--steps", "1000", "--seed", "9", "--wait",
               env=env(url))
    assert done.returncode == ExitStatus.SUCCESS, done.stderr
    lines = done.stderr.splitlines()
    job_id = lines[0]
    assert JOB_ID.match(job_id)
    assert any(re.fullmatch(rf"{job_id} step \d+/1000 loss [\d.e+-]+ \(\d+\.\d s\)", line)
               for line in lines)
    assert re.search(rf"^{job_id} succeeded on cpu \(ux-", done.stderr, re.M)
    assert "\x1b[" not in done.stderr + done.stdout
    assert done.stdout.startswith(f"job {job_id} succeeded")


def test_quiet_prints_only_the_id_or_the_result(url: str, jobs: dict[str, str]) -> None:
    submitted = cli("submit", "--approach", "exact", "-q", env=env(url))
    assert JOB_ID.match(submitted.stdout.strip()) and submitted.stderr == ""
    waited = cli("submit", "--approach", "exact", "--wait", "--quiet", env=env(url))
    assert waited.stderr == ""
    assert waited.stdout.count("\n") == 1 and waited.stdout.startswith("y = ")
    again = cli("wait", jobs["legendre"], "-q", env=env(url))
    assert again.stderr == "" and re.fullmatch(r"y = .* \* P3\(.*\)\n", again.stdout)


def test_a_job_left_queued_gets_a_hint_about_its_queue(url: str) -> None:
    """A cuda job with only a cpu worker up: wait says which worker to start."""
    job_id = cli("submit", "--approach", "legendre", "--device", "cuda", env=env(url)).stdout
    job_id = job_id.strip()
    try:
        done = cli("wait", job_id, "--timeout", "7", env=env(url))
    finally:
        cli("cancel", job_id, env=env(url))
    assert done.returncode == ExitStatus.WAIT_TIMEOUT
    assert "still queued on 'cuda'" in done.stderr
    assert "`polyfit-worker --queues cuda`" in done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"error: job {job_id} still queued after 7 s")


# --- plots ----------------------------------------------------------------------------------

def assert_picture(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == size
        spread = ImageStat.Stat(image.convert("L")).stddev[0]
    assert spread > 10, f"{path} looks blank (pixel standard deviation {spread:.1f})"


@pytest.mark.parametrize("name", ["legendre", "optim", "dynamic", "exact", "data"])
def test_plot_writes_a_two_panel_png(url: str, jobs: dict[str, str], tmp_path: Path,
                                     name: str) -> None:
    target = tmp_path / "fit.png"
    done = cli("plot", jobs[name], "-o", str(target), env=env(url))
    assert done.returncode == ExitStatus.SUCCESS, done.stderr
    assert done.stdout.strip() == str(target)
    assert_picture(target, (1100, 450))


def test_plot_defaults_to_the_job_id_as_file_name(url: str, jobs: dict[str, str],
                                                  tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "polyfit-client"), "plot", jobs["exact"]], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, **env(url)})
    assert done.returncode == 0, done.stderr
    assert_picture(tmp_path / f"{jobs['exact']}.png", (1100, 450))


@pytest.mark.parametrize("name", ["legendre", "optim", "dynamic", "data"])
def test_plotted_curve_is_the_one_the_worker_scored(url: str, jobs: dict[str, str],
                                                    name: str) -> None:
    """Rebuilding the points and evaluating the coefficients gives the recorded final loss,
    so the picture shows what was fitted (dynamic: the cubic plus e·x⁴ + e·x⁵)."""
    record = PolyfitClient(url).status(jobs[name])
    x, y = sample(record.request)
    fitted = evaluate(record.request["approach"], record.result.coefficients, 3, x)
    assert float(np.sum((fitted - y) ** 2)) == pytest.approx(record.result.final_loss,
                                                              rel=1e-3)


def test_dashed_optimum_is_the_least_squares_fit(url: str, jobs: dict[str, str]) -> None:
    record = PolyfitClient(url).status(jobs["exact"])
    optimum = fit_polynomial(*sample(record.request), 3).coefficients
    assert optimum == pytest.approx(list(record.result.coefficients.values()), abs=1e-9)


def test_plot_refuses_what_it_cannot_draw(url: str, jobs: dict[str, str],
                                          tmp_path: Path) -> None:
    failed = cli("plot", jobs["diverged"], "-o", str(tmp_path / "x.png"), env=env(url))
    assert failed.returncode == ExitStatus.JOB_FAILED
    assert failed.stderr.count("\n") == 1 and "Diverged" in failed.stderr
    unknown = cli("plot", "0" * 32, env=env(url))
    assert unknown.returncode == ExitStatus.NOT_FOUND and "polyfit-client list" in unknown.stderr
    unwritable = cli("plot", jobs["exact"], "-o", str(tmp_path / "no" / "x.png"), env=env(url))
    assert unwritable.returncode == ExitStatus.INVALID_REQUEST
    assert unwritable.stderr.startswith("error: plot: cannot")


def test_plot_without_matplotlib_says_how_to_install_it(url: str, jobs: dict[str, str],
                                                        tmp_path: Path) -> None:
    (tmp_path / "matplotlib.py").write_text("raise ImportError('No module named matplotlib')\n")
    hidden = {**env(url), "PYTHONPATH": str(tmp_path)}
    done = cli("plot", jobs["exact"], "-o", str(tmp_path / "x.png"), env=hidden)
    assert done.returncode == ExitStatus.INVALID_REQUEST
    assert done.stderr == ("error: plot: matplotlib is not installed — install it with "
                           "`pip install 'polyfit[plot]'`\n")
    # the rest of the client still works
    assert cli("list", env=hidden).returncode == ExitStatus.SUCCESS


def sweep_record(rates: list[float], seeds: list[int]) -> SweepRecord:
    members = [SweepMember(job_id=f"{i:032x}", degree=3, learning_rate=lr, seed=seed,
                           state=JobState.FAILED if lr > 1e-3 else JobState.SUCCEEDED,
                           final_loss=None if lr > 1e-3 else 8.8 + seed + 1e-6 / lr)
               for i, (lr, seed) in enumerate((lr, s) for lr in rates for s in seeds)]
    members.sort(key=lambda m: (m.final_loss is None, m.final_loss or 0))
    return SweepRecord(sweep_id="f" * 32, state=JobState.SUCCEEDED, queue="cpu",
                       request={"base": {"approach": "tensor"}}, submitted_at=0.0,
                       members=members)


@pytest.mark.parametrize("rates,seeds", [([1e-7, 1e-6, 1e-5, 1e-2], [1, 2, 3]),
                                         ([1e-6], list(range(12)))])
def test_sweep_plot_shows_final_loss_against_rate_or_seed(tmp_path: Path, rates: list[float],
                                                          seeds: list[int]) -> None:
    path = draw_sweep(sweep_record(rates, seeds), tmp_path / "sweep.png")
    assert_picture(path, (800, 450))


def test_plot_of_a_sweep_id_draws_the_sweep(url: str, tmp_path: Path) -> None:
    client = PolyfitClient(url)
    sweep_id = client.sweep(SweepRequest(base=FitRequest(approach="tensor", steps=300),
                                         learning_rates=[1e-6, 1e-5, 1e-2], seeds=[1, 2]))
    client.wait_sweep(sweep_id, timeout=120)
    done = cli("plot", sweep_id, "-o", str(tmp_path / "sweep.png"), env=env(url))
    assert done.returncode == ExitStatus.SUCCESS, done.stderr
    assert_picture(tmp_path / "sweep.png", (800, 450))


# --- tables and export ----------------------------------------------------------------------

def test_result_shows_formula_optimum_and_timings(url: str, jobs: dict[str, str]) -> None:
    done = cli("result", jobs["optim"], env=env(url))
    assert done.returncode == ExitStatus.SUCCESS, done.stderr
    assert "Result: y = " in done.stdout
    assert re.search(r"final loss [\d.]+, [\d.]+ × the least-squares optimum [\d.]+",
                     done.stdout)
    assert re.search(r"1000 steps, seed 2; queued [\d.]+ s, fit [\d.]+ s, total [\d.]+ s",
                     done.stdout)


def test_result_csv_writes_the_loss_history(url: str, jobs: dict[str, str],
                                            tmp_path: Path) -> None:
    target = tmp_path / "history.csv"
    done = cli("result", jobs["dynamic"], "--csv", str(target), "--json", env=env(url))
    assert done.returncode == ExitStatus.SUCCESS, done.stderr
    rows = list(csv.reader(target.open()))
    assert rows[0] == ["step", "loss"]
    history = json.loads(done.stdout)["loss_history"]
    assert [[int(s), float(v)] for s, v in rows[1:]] == history
    assert [int(s) for s, _ in rows[1:]] == list(range(99, 2000, 100))

    failed = cli("result", jobs["diverged"], "--csv", str(target), env=env(url))
    assert failed.returncode == ExitStatus.JOB_FAILED  # the partial history is still written
    assert list(csv.reader(target.open()))[0] == ["step", "loss"]
    unwritable = cli("result", jobs["dynamic"], "--csv", str(tmp_path / "no" / "h.csv"),
                     env=env(url))
    assert unwritable.returncode == ExitStatus.INVALID_REQUEST
    assert unwritable.stderr.startswith("error: csv: cannot write") and unwritable.stdout == ""


def test_list_filters_by_state_and_approach_newest_first(url: str,
                                                         jobs: dict[str, str]) -> None:
    failed = json.loads(cli("list", "--state", "failed", "--json", env=env(url)).stdout)
    assert {d["state"] for d in failed} == {"failed"}  # the diverged job (and sweep members)
    assert jobs["diverged"] in {d["job_id"] for d in failed}
    exact = json.loads(cli("list", "--approach", "exact", "--json", env=env(url)).stdout)
    assert {d["approach"] for d in (e["request"] for e in exact)} == {"exact"}
    assert jobs["exact"] in {e["job_id"] for e in exact}
    submitted = [e["submitted_at"] for e in exact]
    assert submitted == sorted(submitted, reverse=True)

    table = cli("list", "--approach", "legendre", "--limit", "50", env=env(url)).stdout
    header = table.splitlines()[0].split()
    assert header == ["id", "approach", "state", "device", "final", "loss", "fit", "s",
                      "submitted"]
    row = next(line for line in table.splitlines() if line.startswith(jobs["legendre"]))
    assert row.split()[1:4] == ["legendre", "succeeded", "cpu"]  # the id is never cut
    assert jobs["exact"] not in table
    assert "no jobs match" in cli("list", "--state", "running", "--approach", "exact",
                                  env=env(url)).stdout


# --- errors ---------------------------------------------------------------------------------

def one_line_error(done: subprocess.CompletedProcess, code: int) -> str:
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def test_errors_are_one_line_saying_what_to_do(url: str, tmp_path: Path) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    assert "`polyfit-local up`" in one_line_error(cli("list", env=env(nowhere)), 4)
    assert "`polyfit-client list`" in one_line_error(cli("status", "0" * 32, env=env(url)), 3)
    assert "`polyfit-client wait --help`" in one_line_error(cli("wait", env=env(url)), 2)
    assert "steps: " in one_line_error(cli("submit", "--approach", "nn", "--steps", "0",
                                           env=env(url)), 2)
    assert "--approach NAME" in one_line_error(cli("submit", env=env(url)), 2)
    with EmbeddedRedis(directory=tmp_path / "locked", password="right") as locked:
        wrong = locked.url.replace(":right@", ":wrong@")
        message = one_line_error(cli("list", env=env(wrong)), 4)
    assert "refused the credentials" in message and "right" not in message


def test_odd_values_and_odd_servers_get_one_line_errors(url: str) -> None:
    sweep = ("sweep", "--approach", "tensor")
    assert "more than the limit" in one_line_error(
        cli(*sweep, "--seeds", "0-2000000000", env=env(url)), 2)  # counted, never listed
    assert "5-3 is an empty range" in one_line_error(cli(*sweep, "--seeds", "5-3", env=env(url)),
                                                     2)
    assert "names no seed" in one_line_error(cli(*sweep, "--seeds", ",", env=env(url)), 2)
    assert "add --wait" in one_line_error(cli("submit", "--approach", "nn", "--timeout", "5",
                                              env=env(url)), 2)
    for timeout in ("-1", "0", "nan"):
        assert "positive number of seconds" in one_line_error(
            cli("wait", "0" * 32, "--timeout", timeout, env=env(url)), 2)
    assert "database number" in one_line_error(
        cli("list", env=env(url.rsplit("/", 1)[0] + "/99")), 4)
    assert "database number" in one_line_error(
        cli("submit", "--approach", "nn", env=env(url.rsplit("/", 1)[0] + "/99")), 4)
    message = one_line_error(cli("list", env=env(f"redis://:top@secret@127.0.0.1:{free_port()}"
                                                 "/0")), 4)
    assert "secret" not in message and "top" not in message

    listener = socket.create_server(("127.0.0.1", 0))  # a web server where Redis was expected

    def answer_as_http() -> None:
        with listener:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                with connection:
                    connection.recv(1024)
                    connection.sendall(b"<html>not redis</html>\r\n")

    threading.Thread(target=answer_as_http, daemon=True).start()
    try:
        http = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        assert "check the host and port" in one_line_error(cli("list", env=env(http)), 4)
    finally:
        listener.close()


def test_a_record_that_is_not_valid_breaks_no_listing(url: str, jobs: dict[str, str]) -> None:
    """A hash no polyfit writes (NaN results were stored as null by older workers) reads as a
    failed job saying why; listing and cancelling the others go on."""
    bad = "f" * 32
    store = redis.Redis.from_url(url)
    store.hset(f"polyfit:job:{bad}", mapping={
        "job_id": bad, "state": "succeeded", "queue": "cpu", "request": '{"approach": "nn"}',
        "submitted_at": repr(time.time()), "result": '{"final_loss": null}'})
    store.zadd("polyfit:jobs", {bad: time.time()})
    try:
        listed = cli("list", "--limit", "100", env=env(url))
        assert listed.returncode == ExitStatus.SUCCESS and jobs["legendre"] in listed.stdout
        row = next(line for line in listed.stdout.splitlines() if line.startswith(bad))
        assert row.split()[1:3] == ["nn", "failed"]
        assert "UnreadableRecord" in one_line_error(cli("result", bad, env=env(url)), 1)
        assert "result.final_loss" in cli("status", bad, env=env(url)).stdout
    finally:
        store.delete(f"polyfit:job:{bad}")
        store.zrem("polyfit:jobs", bad)
    again = cli("cancel", jobs["legendre"], env=env(url))
    assert again.stdout.strip().endswith("already succeeded; nothing to cancel")


# --- the usage guide ------------------------------------------------------------------------

def usage_script(port: int) -> str:
    """docs/USAGE.md's ``sh`` and ``python`` blocks, in order, as one bash script."""
    text = (ROOT / "docs" / "USAGE.md").read_text()
    parts = ["set -euo pipefail", "trap 'polyfit-local down' EXIT"]
    for language, body in re.findall(r"^```(sh|python)\n(.*?)^```", text, re.M | re.S):
        if language == "sh":
            parts.append(body.replace("--port 6390", f"--port {port} --api-port {free_port()}"))
        else:
            parts.append(f"python - <<'PYTHON'\n{body}PYTHON")
    return "\n".join(parts)


def test_usage_examples_run(tmp_path: Path) -> None:
    """Every command the usage guide shows works, against a fresh ``polyfit-local up``."""
    script = usage_script(free_port())
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("POLYFIT_REDIS_URL", None)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "failed as expected: job" in done.stdout
    assert_picture(tmp_path / "fit.png", (1100, 450))
    assert_picture(tmp_path / "sweep.png", (800, 450))
    assert not (tmp_path / ".polyfit" / "pids.json").exists()  # down ran
