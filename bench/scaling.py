"""How a fit's cost grows, and how close it comes to this CPU's limits, in one process.

Sections (``--only`` picks some; all by default):

- ``probes``: this machine's memory bandwidth (a 256 MiB copy, and a 200 KiB one that stays
  in cache) and matmul rate (float32, 1024³, one thread and every core): the ceilings the
  cases below are held against.
- ``threads``: single fits (n = 2k … 100k points) and nn sweeps (K·n up to 8.2M elements) on
  one thread and on every core: the crossover behind ``THREADS_PAY_FROM``
  (worker/engine/threads.py).
- ``points``, ``degree``, ``steps``: fit time against n_points (2k, 20k, 100k), the degree
  (3, 5, 9) and the steps, per approach, on one thread; each case's time per step per point
  and the bandwidth its elementwise traffic reaches against the in-cache probe (``traffic``).
- ``sweep``: nn sweep throughput against K (1 … 16,384 at 2000 points), with the bandwidth of
  its residual traffic (8·K·n bytes a step, as bench/sweep.py counts it).
- ``profile``: where a default legendre fit's time goes (torch.profiler, top operations),
  at 2k and 100k points.

Learning rates are scaled by 2000 / n_points (the defaults are for 2000 points; more points
sum more squared errors and would diverge). Times are the best of ``--repeat`` after one
untimed fit (traced steps cached, as in a warm worker).

Run: ``.venv/bin/python bench/scaling.py [--only threads points …] [--repeat N]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on the path, where bench/queue.py would shadow the
# standard library's queue (which torch imports); the project root takes its place.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402

from bench.sweep import sweep_requests  # noqa: E402
from polyfit.models import FitRequest  # noqa: E402
from polyfit.worker.engine.batched.report import BatchReport  # noqa: E402
from polyfit.worker.engine.fit import Diverged, Report  # noqa: E402
from polyfit.worker.engine.run import run_fit  # noqa: E402
from polyfit.worker.engine.sweep import run_sweep  # noqa: E402
from polyfit.worker.engine.threads import THREADS_PAY_FROM  # noqa: E402
from polyfit.worker.service.memory import keep_freed_memory  # noqa: E402

CORES = os.cpu_count() or 1
SECTIONS = ("probes", "threads", "points", "degree", "steps", "sweep", "profile")

# Operations over the n points in one step that records no loss, each taken to read one or
# two n-vectors and write one: the traffic model behind the bandwidth column. Counted in the
# traced graphs (worker/engine/replay.py; an (n × k) operand counts k times), and for
# ``tensor``, whose loop is not traced, in its source.
ELEMENTWISE_OPS = {"tensor": 16, "autograd": 14, "legendre": 18, "nn": 12, "module": 14}


def best_of(repeat: int, run: Callable[[], object]) -> float:
    run()  # untimed: traces, caches, first-touch pages
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def bandwidth_probe() -> float:
    """Bytes per second of a 256 MiB float32 copy (read 256 MiB, write 256 MiB)."""
    source = torch.ones(64 * 2**20)
    target = torch.empty_like(source)
    seconds = best_of(5, lambda: target.copy_(source))
    return 2 * source.numel() * 4 / seconds


def cache_bandwidth_probe() -> float:
    """Bytes per second of a 200 KiB float32 copy repeated (read and write stay in L2): the
    ceiling of the cases below, whose vectors (8 KiB – 400 KiB) stay in cache."""
    source = torch.ones(50 * 1024)
    target = torch.empty_like(source)

    def copies() -> None:
        for _ in range(1000):
            target.copy_(source)

    return 2 * source.numel() * 4 * 1000 / best_of(5, copies)


def matmul_probe(threads: int) -> float:
    """Float32 FLOP per second of a 1024 × 1024 × 1024 matmul on ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    seconds = best_of(5, lambda: a @ b)
    torch.set_num_threads(1)
    return 2 * 1024**3 / seconds


def request(approach: str, n_points: int = 2000, steps: int = 2000, **fields) -> FitRequest:
    rate = FitRequest(approach=approach, **fields).learning_rate * 2000 / n_points
    return FitRequest(approach=approach, seed=0, n_points=n_points, steps=steps,
                      learning_rate=rate, **fields)


def fit_seconds(fit: FitRequest, repeat: int) -> float:
    return best_of(repeat, lambda: run_fit(fit, Report(fit.record_every, fit.steps), "cpu"))


def sweep_seconds(size: int, steps: int, repeat: int, n_points: int = 2000) -> float:
    members = sweep_requests("nn", size, steps, "cpu", n_points)
    return best_of(repeat, lambda: run_sweep(
        members, BatchReport(size, members[0].record_every, steps), "cpu"))


def traffic(approach: str, n_points: int, steps: int, seconds: float) -> str:
    """Bytes per second of a fit's elementwise traffic (12 bytes per element of each
    elementwise op: two float32 reads, one write), as a share of the in-cache copy probe
    (its vectors stay in cache: DRAM bandwidth is not what bounds it)."""
    ops = ELEMENTWISE_OPS.get(approach)
    if ops is None:
        return "—"
    rate = ops * 12 * n_points * steps / seconds
    return f"{rate / 1e9:6.2f} GB/s {rate / PROBES['cache']:5.1%}"


PROBES: dict[str, float] = {}


def probes(args: argparse.Namespace) -> None:
    PROBES["bandwidth"] = bandwidth_probe()
    PROBES["cache"] = cache_bandwidth_probe()
    PROBES["flops_1"] = matmul_probe(1)
    PROBES["flops_all"] = matmul_probe(CORES)
    print(f"memory bandwidth (256 MiB copy, 1 thread): {PROBES['bandwidth'] / 1e9:.1f} GB/s; "
          f"in cache (200 KiB copy): {PROBES['cache'] / 1e9:.1f} GB/s")
    print(f"matmul float32 1024³: {PROBES['flops_1'] / 1e9:.1f} GFLOP/s on 1 thread, "
          f"{PROBES['flops_all'] / 1e9:.1f} on {CORES}")


def threads(args: argparse.Namespace) -> None:
    print(f"{'case':28} {'elements':>10} {'1 thread s':>10} {f'{CORES} threads s':>11} "
          f"{'ratio':>6}  (ratio < 1: threads pay)")

    def row(name: str, elements: int, run: Callable[[], float]) -> None:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(CORES)
        many = run()
        torch.set_num_threads(1)
        print(f"{name:28} {elements:>10,} {one:>10.4f} {many:>11.4f} {many / one:>6.2f}",
              flush=True)

    for approach in ("nn", "legendre"):
        for n_points in (2000, 20_000, 100_000):
            fit = request(approach, n_points, steps=500)
            row(f"{approach} n={n_points}", n_points, lambda f=fit: fit_seconds(f, args.repeat))
    for size in (16, 64, 256, 1024, 2048, 4096):
        row(f"nn sweep K={size} n=2000", size * 2000,
            lambda k=size: sweep_seconds(k, 200, args.repeat))
    print(f"THREADS_PAY_FROM = {THREADS_PAY_FROM:,} elements (worker/engine/threads.py)")


def points(args: argparse.Namespace) -> None:
    print(f"{'approach':9} {'n_points':>8} {'fit s':>8} {'ns/step/pt':>10}  elementwise traffic")
    for approach in ("numpy", "tensor", "autograd", "legendre", "nn", "module"):
        for n_points in (2000, 20_000, 100_000):
            seconds = fit_seconds(request(approach, n_points, steps=500), args.repeat)
            print(f"{approach:9} {n_points:>8} {seconds:>8.4f} "
                  f"{seconds / 500 / n_points * 1e9:>10.2f}  "
                  f"{traffic(approach, n_points, 500, seconds)}", flush=True)


def degree(args: argparse.Namespace) -> None:
    print(f"{'approach':9} {'degree':>6} {'fit s':>8}")
    for approach in ("tensor", "autograd", "legendre", "nn", "module"):
        for value in (3, 5, 9):
            # Stable for every degree: the gradient grows with n·π^(2·degree).
            rate = 1 / (2000 * math.pi ** (2 * value))
            fit = FitRequest(approach=approach, seed=0, steps=500, degree=value,
                             learning_rate=rate)
            try:
                seconds = f"{fit_seconds(fit, args.repeat):>8.4f}"
            except Diverged:
                seconds = "diverged"
            print(f"{approach:9} {value:>6} {seconds:>8}", flush=True)


def steps(args: argparse.Namespace) -> None:
    print(f"{'approach':9} {'steps':>6} {'fit s':>8} {'µs/step':>8}")
    for approach in ("legendre", "nn"):
        for count in (500, 2000, 8000):
            seconds = fit_seconds(request(approach, steps=count), args.repeat)
            print(f"{approach:9} {count:>6} {seconds:>8.4f} {seconds / count * 1e6:>8.1f}",
                  flush=True)


def sweep(args: argparse.Namespace) -> None:
    print(f"{'K':>6} {'sweep s':>8} {'fits/s':>8}  residual traffic (8·K·n B/step)")
    for size in (1, 16, 256, 4096, 16_384):
        seconds = sweep_seconds(size, 200, 1 if size > 4096 else args.repeat)
        rate = 8 * size * 2000 * 200 / seconds
        share = f"{rate / PROBES['bandwidth']:5.1%}" if "bandwidth" in PROBES else ""
        print(f"{size:>6} {seconds:>8.3f} {size / seconds:>8.0f}  {rate / 1e9:6.2f} GB/s {share}",
              flush=True)


def profile(args: argparse.Namespace) -> None:
    for n_points in (2000, 100_000):
        fit = request("legendre", n_points, steps=500)
        run_fit(fit, Report(fit.record_every, fit.steps), "cpu")
        with torch.profiler.profile() as measured:
            run_fit(fit, Report(fit.record_every, fit.steps), "cpu")
        print(f"legendre, {n_points} points, 500 steps: top operations by self CPU time")
        print(measured.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    args = parser.parse_args()
    keep_freed_memory()  # as a worker does
    torch.set_num_threads(1)
    print(f"# {platform.machine()} {platform.processor() or ''}, {CORES} cores, "
          f"torch {torch.__version__}")
    for section in SECTIONS:
        if section in args.only:
            print(f"\n## {section}")
            globals()[section](args)


if __name__ == "__main__":
    main()
