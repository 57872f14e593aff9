"""The queue's own cost: polyfit jobs with steps=1 against a Celery no-op, on one Redis and
one worker started here (an embedded redis-server, a real ``polyfit-worker``).

Prints round-trip latency p50/p99 (submit → result readable) for each and the throughput
of 500 jobs, as ratios polyfit / no-op (goals: p50 ≤ 2×, throughput ≥ 0.5×), for worker
concurrency 1 and 2. The two are measured alternately, a round trip of each in turn and
throughput in five rounds of each (the median round counts), so that the host's load, which
drifts, weighs on both alike. Run: ``.venv/bin/python bench/queue.py``.

``--task-events``: what Celery's task events (``POLYFIT_TASK_EVENTS``, for Flower) cost
instead: the same jobs on two Redis servers and workers side by side, one sending events,
measured alternately; prints latency, throughput and Redis commands per job, events / none.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and this file would hide the
# standard library's `queue`: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

BIN = Path(sys.executable).parent

from polyfit.client import PolyfitClient  # noqa: E402
from polyfit.client.embedded import EmbeddedRedis  # noqa: E402
from polyfit.models import FitRequest, messages  # noqa: E402

REQUEST = FitRequest(approach="tensor", steps=1, seed=0, device="cpu")
ROUNDS = 5  # throughput rounds of each, count / ROUNDS jobs a round


def start_worker(url: str, concurrency: int, log: Path,
                 task_events: bool = False) -> subprocess.Popen:
    env = {**os.environ, "POLYFIT_REDIS_URL": url, "POLYFIT_TASK_EVENTS": str(task_events)}
    command = [str(BIN / "polyfit-worker"), "--queues", "cpu", "--concurrency", str(concurrency),
               "--loglevel", "WARNING"]
    return subprocess.Popen(command, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def ping_round_trip(client: PolyfitClient) -> float:
    reply = f"bench:reply:{uuid.uuid4().hex}"
    started = time.perf_counter()
    client.celery.send_task(messages.PING, args=[reply], queue="cpu")
    answered(client.store.redis.blpop([reply], timeout=30))
    return time.perf_counter() - started


def answered(reply: object) -> None:
    """A no-op's reply; a lost one would count as a fast round trip."""
    if reply is None:
        raise SystemExit("bench/queue: a polyfit.ping got no reply; see the worker log")


def job_round_trip(client: PolyfitClient) -> float:
    started = time.perf_counter()
    client.wait(client.submit(REQUEST), timeout=30)
    return time.perf_counter() - started


def ping_throughput(client: PolyfitClient, count: int) -> float:
    reply = f"bench:reply:{uuid.uuid4().hex}"
    started = time.perf_counter()
    for _ in range(count):
        client.celery.send_task(messages.PING, args=[reply], queue="cpu")
    for _ in range(count):
        answered(client.store.redis.blpop([reply], timeout=60))
    return count / (time.perf_counter() - started)


def job_throughput(client: PolyfitClient, count: int) -> float:
    started = time.perf_counter()
    ids = [client.submit(REQUEST) for _ in range(count)]
    for job_id in ids:
        client.wait(job_id, timeout=120)
    return count / (time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def measure(concurrency: int, samples: int, count: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="polyfit-bench-"))
    with EmbeddedRedis(directory=directory) as server:
        worker = start_worker(server.url, concurrency, directory / "worker.log")
        try:
            client = PolyfitClient(server.url)
            for _ in range(5):  # warm up: pool processes, imports, connections
                job_round_trip(client)
                ping_round_trip(client)
            pings, jobs = [], []
            for _ in range(samples):
                pings.append(ping_round_trip(client))
                jobs.append(job_round_trip(client))
            ping_rates, job_rates = [], []
            for _ in range(ROUNDS):
                ping_rates.append(ping_throughput(client, count // ROUNDS))
                job_rates.append(job_throughput(client, count // ROUNDS))
            ping_rate, job_rate = statistics.median(ping_rates), statistics.median(job_rates)
        finally:
            worker.terminate()
            worker.wait(30)
    print(f"concurrency {concurrency}: latency p50 no-op {percentile(pings, 50) * 1e3:.2f} ms, "
          f"polyfit {percentile(jobs, 50) * 1e3:.2f} ms, ratio "
          f"{percentile(jobs, 50) / percentile(pings, 50):.2f} (goal ≤ 2)")
    print(f"concurrency {concurrency}: latency p99 no-op {percentile(pings, 99) * 1e3:.2f} ms, "
          f"polyfit {percentile(jobs, 99) * 1e3:.2f} ms, ratio "
          f"{percentile(jobs, 99) / percentile(pings, 99):.2f}")
    print(f"concurrency {concurrency}: throughput (median of {ROUNDS} rounds of {count // ROUNDS}):"
          f" no-op {ping_rate:.0f}/s, polyfit "
          f"{job_rate:.0f}/s, ratio {job_rate / ping_rate:.2f} (goal ≥ 0.5)", flush=True)


def measure_task_events(concurrency: int, samples: int, count: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="polyfit-bench-"))
    with (EmbeddedRedis(directory=directory / "none") as plain,
          EmbeddedRedis(directory=directory / "events") as evented):
        workers = [start_worker(server.url, concurrency, directory / f"worker-{name}.log",
                                task_events=name == "events")
                   for server, name in ((plain, "none"), (evented, "events"))]
        try:
            clients = [PolyfitClient(plain.url), PolyfitClient(evented.url)]
            for _ in range(5):
                for client in clients:
                    job_round_trip(client)
            latencies: list[list[float]] = [[], []]
            commands = [commands_processed(client) for client in clients]
            for _ in range(samples):
                for side, client in enumerate(clients):
                    latencies[side].append(job_round_trip(client))
            per_job = [(commands_processed(client) - before) / samples
                       for client, before in zip(clients, commands, strict=True)]
            rates: list[list[float]] = [[], []]
            for _ in range(ROUNDS):
                for side, client in enumerate(clients):
                    rates[side].append(job_throughput(client, count // ROUNDS))
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(30)
    (p50_none, p50_events), (p99_none, p99_events) = (
        [percentile(values, q) for values in latencies] for q in (50, 99))
    rate_none, rate_events = (statistics.median(values) for values in rates)
    print(f"concurrency {concurrency}: latency p50 no events {p50_none * 1e3:.2f} ms, events "
          f"{p50_events * 1e3:.2f} ms, ratio {p50_events / p50_none:.2f}; p99 "
          f"{p99_none * 1e3:.2f} / {p99_events * 1e3:.2f} ms, ratio {p99_events / p99_none:.2f}")
    print(f"concurrency {concurrency}: throughput (median of {ROUNDS} rounds of "
          f"{count // ROUNDS}): no events {rate_none:.0f}/s, events {rate_events:.0f}/s, ratio "
          f"{rate_events / rate_none:.2f}; Redis commands a job {per_job[0]:.1f} / "
          f"{per_job[1]:.1f}", flush=True)


def commands_processed(client: PolyfitClient) -> int:
    return int(client.store.redis.info("stats")["total_commands_processed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--task-events", action="store_true",
                        help="measure what Celery's task events cost instead")
    args = parser.parse_args()
    if args.task_events:
        print(f"# {os.cpu_count()} cores; tensor fit with steps=1, task events on vs off")
    else:
        print(f"# {os.cpu_count()} cores; tensor fit with steps=1 vs polyfit.ping")
    for concurrency in args.concurrency:
        if args.task_events:
            measure_task_events(concurrency, args.samples, args.count)
        else:
            measure(concurrency, args.samples, args.count)


if __name__ == "__main__":
    main()
