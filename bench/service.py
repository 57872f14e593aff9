"""Fit time as users of the service see it: ``fit_seconds`` of jobs run by real workers
(``polyfit-worker --concurrency 1`` and ``2``, on an embedded redis-server started here)
against the tutorial's loop timed in this process in the same run.

Prints, per approach and concurrency, the best ``fit_seconds`` of five rounds (each round
submits ``concurrency`` jobs at once, so that every pool process is busy), after one warm-up
round, and its ratio to the tutorial loop (one thread, best of three, the same starting
coefficients and steps): goal ≤ 0.30 at both concurrencies. Then warm workers: ``--fresh``
new ``--concurrency 1`` workers run ten default legendre jobs each; the best first job's
``fit_seconds`` against the best tenth's (goal: within 10 %), with the warm-up and, for
comparison, without it (``POLYFIT_WARM_UP=false``). Last, the end-to-end latency of the
default legendre job (submit → result in the client, best of ``--rounds``) against its fit
time: goal ≤ fit + 10 ms.

Run: ``.venv/bin/python bench/service.py [--approaches legendre nn …] [--rounds N]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on the path, where bench/queue.py would shadow the
# standard library's queue (which torch imports); the project root takes its place.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import torch  # noqa: E402

from bench import tutorial  # noqa: E402
from polyfit.client import PolyfitClient  # noqa: E402
from polyfit.client.embedded import EmbeddedRedis  # noqa: E402
from polyfit.models import FitRequest  # noqa: E402
from polyfit.worker.engine.fit import Report, make_problem  # noqa: E402
from polyfit.worker.engine.run import run_fit  # noqa: E402
from polyfit.worker.service.memory import keep_freed_memory  # noqa: E402

BIN = Path(sys.executable).parent
GOAL_RATIO = 0.30
GOAL_OVERHEAD = 0.010  # seconds of end-to-end latency beyond the fit


def job(approach: str) -> FitRequest:
    return FitRequest(approach=approach, seed=1, device="cpu")


def tutorial_seconds(approach: str, repeat: int = 3) -> float:
    """The tutorial's loop for ``approach``'s default job, one thread, best of ``repeat``."""
    torch.set_num_threads(1)
    request = job(approach)
    problem = make_problem(request, "cpu")
    one_step = request.model_copy(update={"steps": 1})  # its starting coefficients, quickly
    initial = list(run_fit(one_step, Report(1, 1), "cpu").initial_coefficients.values())
    program = tutorial.PROGRAMS[approach]
    extra = {"seed": request.seed} if approach == "dynamic" else {}
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        program(initial, problem.x, problem.y, request.steps, request.learning_rate, **extra)
        best = min(best, time.perf_counter() - started)
    return best


@contextmanager
def worker(url: str, concurrency: int, log: Path,
           settings: dict[str, str] | None = None) -> Iterator[PolyfitClient]:
    """A real ``polyfit-worker`` on ``url`` as users start it, with ``settings`` in its
    environment; a client of its Redis."""
    env = {**os.environ, "POLYFIT_REDIS_URL": url, **(settings or {})}
    command = [str(BIN / "polyfit-worker"), "--queues", "cpu", "--concurrency", str(concurrency),
               "--loglevel", "INFO"]
    process = subprocess.Popen(command, env=env, stdout=open(log, "ab"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield PolyfitClient(url)
    finally:
        process.terminate()
        process.wait(60)


def round_of(client: PolyfitClient, request: FitRequest, jobs: int) -> list[float]:
    """``jobs`` jobs submitted at once; their ``fit_seconds``."""
    ids = [client.submit(request) for _ in range(jobs)]
    return [client.wait(job_id, timeout=600).result.fit_seconds for job_id in ids]


def fit_table(url: str, directory: Path, approaches: list[str], rounds: int,
              tutorial_s: dict[str, float]) -> None:
    for concurrency in (1, 2):
        with worker(url, concurrency, directory / f"worker-{concurrency}.log") as client:
            for approach in approaches:
                request = job(approach)
                round_of(client, request, concurrency)  # warm-up round
                best = min(min(round_of(client, request, concurrency)) for _ in range(rounds))
                ratio = best / tutorial_s[approach]
                print(f"{approach:9} concurrency {concurrency}: fit {best:.4f} s, tutorial "
                      f"{tutorial_s[approach]:.4f} s, ratio {ratio:.2f} "
                      f"({'ok' if ratio <= GOAL_RATIO else 'over'} ≤ {GOAL_RATIO})", flush=True)


def first_and_tenth(url: str, directory: Path, fresh: int, warm_up: bool) -> tuple[float, float]:
    """The best first and best tenth default legendre ``fit_seconds`` of ``fresh`` new
    ``--concurrency 1`` workers, ten jobs each, one after another."""
    request, firsts, tenths = job("legendre"), [], []
    for index in range(fresh):
        log = directory / f"worker-fresh-{warm_up}-{index}.log"
        with worker(url, 1, log, {"POLYFIT_WARM_UP": str(warm_up).lower()}) as client:
            fits = [client.wait(client.submit(request), timeout=600).result.fit_seconds
                    for _ in range(10)]
        firsts.append(fits[0])
        tenths.append(fits[9])
    return min(firsts), min(tenths)


def latency(url: str, directory: Path, rounds: int) -> None:
    request = job("legendre")
    with worker(url, 1, directory / "worker-latency.log") as client:
        client.wait(client.submit(request), timeout=600)
        latencies = []
        for _ in range(rounds):
            started = time.perf_counter()
            record = client.wait(client.submit(request), timeout=600)
            latencies.append((time.perf_counter() - started, record.result.fit_seconds))
    seconds, fit = min(latencies)
    overhead = seconds - fit
    print(f"end to end (submit → result in the client), best of {rounds}: {seconds:.4f} s, "
          f"its fit {fit:.4f} s, overhead {overhead * 1e3:.1f} ms "
          f"({'ok' if overhead <= GOAL_OVERHEAD else 'over'} ≤ 10 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--approaches", nargs="*", default=list(tutorial.PROGRAMS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fresh", type=int, default=5, help="fresh workers for first vs tenth")
    args = parser.parse_args()
    keep_freed_memory()
    print(f"# {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}; default jobs, seed 1, cpu")
    tutorial_s = {approach: tutorial_seconds(approach) for approach in args.approaches}
    directory = Path(tempfile.mkdtemp(prefix="polyfit-bench-"))
    with EmbeddedRedis(directory=directory) as server:
        fit_table(server.url, directory, args.approaches, args.rounds, tutorial_s)
        for warm_up in (True, False):
            first, tenth = first_and_tenth(server.url, directory, args.fresh, warm_up)
            verdict = f"{'ok' if first <= 1.1 * tenth else 'over'}: goal ≤ 1.10" if warm_up else ""
            print(f"{args.fresh} fresh workers, POLYFIT_WARM_UP={str(warm_up).lower()}: best first "
                  f"legendre job {first:.4f} s, best tenth {tenth:.4f} s, first / tenth "
                  f"{first / tenth:.2f} {verdict}", flush=True)
        latency(server.url, directory, args.rounds)
    print(f"worker logs: {directory}")


if __name__ == "__main__":
    main()
