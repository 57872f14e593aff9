"""Sweeps against single fits, in one process on the CPU, with the same requests.

Prints:
1. K = 256 members of ``nn`` and of ``autograd`` as one sweep against the same 256 requests
   run one after another as single fits (``run_fit``); goal ≥ 20× faster. Only
   ``--singles`` of the singles are timed (default 32) and their time scaled to 256, as the
   table says; their final losses are compared with their members' (relative difference).
   The sweep and the singles are timed ``--rounds`` times each, alternately (default 3),
   and the best time of each is kept.
2. Throughput in fits per second of ``nn`` sweeps of K = 1, 16, 256, 4096 members.

Defaults: 2000 points, 2000 steps, one torch thread (``--threads``). The members cross 16
learning rates (2e-7 … 2e-6, all stable for the cubic on [−π, π]) with K/16 seeds.

``gpu_sweep_report()`` is for the GPU check script: a K = 4096 ``nn`` sweep on cuda with
2000 points and 2000 steps, its fit time and the memory bandwidth it achieved.

Run: ``.venv/bin/python bench/sweep.py [--steps N] [--singles N] [--rounds N] [--threads N]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on the path, where bench/queue.py would shadow the
# standard library's queue (which torch imports); the project root takes its place.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from polyfit.models import FitRequest, FitResult  # noqa: E402
from polyfit.models.sweep import SweepRequest  # noqa: E402
from polyfit.worker.engine.batched import BATCHED  # noqa: E402
from polyfit.worker.engine.batched.report import BatchReport  # noqa: E402
from polyfit.worker.engine.fit import Report, make_problem  # noqa: E402
from polyfit.worker.engine.run import run_fit  # noqa: E402
from polyfit.worker.engine.sweep import run_sweep  # noqa: E402
from polyfit.worker.service.memory import keep_freed_memory  # noqa: E402

LEARNING_RATES = [2e-7 + i * (2e-6 - 2e-7) / 15 for i in range(16)]


def sweep_requests(approach: str, size: int, steps: int, device: str = "cpu",
                   n_points: int = 2000) -> list[FitRequest]:
    """``size`` members: 16 learning rates × ⌈size/16⌉ seeds, the first ``size`` of them (one
    rate below 16 members)."""
    base = FitRequest(approach=approach, steps=steps, n_points=n_points, device=device)
    rates = LEARNING_RATES if size >= 16 else [1e-6]
    seeds = list(range(-(-size // len(rates))))
    return SweepRequest(base=base, learning_rates=rates, seeds=seeds).members()[:size]


def timed_sweep(requests: list[FitRequest], device: str = "cpu") -> tuple[float, list]:
    base = requests[0]
    report = BatchReport(len(requests), base.record_every, base.steps)
    started = time.perf_counter()
    results = run_sweep(requests, report, device)
    return time.perf_counter() - started, results


def timed_singles(requests: list[FitRequest]) -> tuple[float, list[FitResult]]:
    started = time.perf_counter()
    results = [run_fit(r, Report(r.record_every, r.steps), "cpu") for r in requests]
    return time.perf_counter() - started, results


def versus_singles(approach: str, size: int, singles: int, steps: int, rounds: int) -> None:
    requests = sweep_requests(approach, size, steps)
    # every (size/singles)-th member, so the timed singles span all learning rates
    picked = list(range(0, size, max(size // singles, 1)))[:singles]
    # Rounds of both, alternated, and the best of each: the host's load drifts.
    sweep_s = singles_s = float("inf")
    for _ in range(rounds):
        seconds, members = timed_sweep(requests)
        sweep_s = min(sweep_s, seconds)
        seconds, alone = timed_singles([requests[i] for i in picked])
        singles_s = min(singles_s, seconds)
    scaled = singles_s * size / len(picked)
    worst = max(abs(members[i].final_loss - a.final_loss) / a.final_loss
                for i, a in zip(picked, alone, strict=True))
    print(f"{approach:9} {size:>5} {sweep_s:>9.3f} {len(picked):>7} {singles_s:>9.3f} "
          f"{scaled:>12.2f} {scaled / sweep_s:>8.1f}x {worst:>10.1e}", flush=True)


def throughput(sizes: list[int], steps: int) -> None:
    timed_sweep(sweep_requests("nn", 16, 10))  # warm-up
    print(f"{'K':>5} {'sweep s':>9} {'fits/s':>10}")
    for size in sizes:
        seconds, _ = timed_sweep(sweep_requests("nn", size, steps))
        print(f"{size:>5} {seconds:>9.3f} {size / seconds:>10.1f}", flush=True)


def peak_bandwidth(device: int = 0) -> float | None:
    """The card's DRAM bandwidth in bytes/s: bus width × memory clock × 2 (double data rate);
    None where this torch does not report the two."""
    props = torch.cuda.get_device_properties(device)
    bus, clock_khz = (getattr(props, name, None) for name in ("memory_bus_width",
                                                               "memory_clock_rate"))
    return 2 * bus / 8 * clock_khz * 1000 if bus and clock_khz else None


def gpu_sweep_report(size: int = 4096, steps: int = 2000, n_points: int = 2000) -> str:
    """A K = 4096 ``nn`` sweep on cuda (2000 points, 2000 steps): fit time and bandwidth.

    Bytes per step are counted for the residual R (K × n float32), the only large operand:
    one kernel writes it (R = [W 1]·[Pᵀ; −y]) and one reads it (Pᵀ·Rᵀ), 8·K·n bytes a step;
    W, the powers, y and the gradient are KBs, and the recorded steps' extra read of R
    (20 of 2000 steps) is left out. The time per step is the difference between a fit of
    ``steps`` steps and one of 1 step (same members) over steps − 1, so member set-up and
    result handling stay out of the bandwidth; the fit's whole time is printed too.
    """
    if not torch.cuda.is_available():
        return "gpu sweep: torch sees no CUDA GPU; skipped"
    approach = "nn"
    full = sweep_requests(approach, size, steps, "cuda", n_points)
    one = sweep_requests(approach, size, 1, "cuda", n_points)
    problem = make_problem(full[0], "cuda")

    def batch(requests: list[FitRequest]) -> float:
        report = BatchReport(len(requests), requests[0].record_every, requests[0].steps)
        torch.cuda.synchronize()
        started = time.perf_counter()
        BATCHED[approach](problem, requests, report)  # ends in .tolist(): synchronised
        return time.perf_counter() - started

    batch(sweep_requests(approach, size, 50, "cuda", n_points))  # warm-up: kernels, cuBLAS
    whole, results = timed_sweep(full, "cuda")
    fit_s = min(batch(full) for _ in range(3))
    setup_s = min(batch(one) for _ in range(3))
    per_step = (fit_s - setup_s) / (steps - 1)
    moved = 2 * size * n_points * 4
    achieved = moved / per_step
    peak = peak_bandwidth()
    best = min(r.final_loss for r in results if r is not None)
    name = torch.cuda.get_device_name()
    return "\n".join([
        f"gpu sweep: {size} members of {approach}, {n_points} points, {steps} steps on {name}",
        f"  run_sweep (set-up, steps, {size} results): {whole:.3f} s",
        f"  fit (batched call, best of 3): {fit_s:.3f} s — goal under 0.2 s on an H100",
        f"  per step: {per_step * 1e6:.1f} µs (fit with {steps} steps minus fit with 1 step)",
        f"  bandwidth: {achieved / 1e9:.0f} GB/s counting 8·K·n bytes per step (R written "
        f"once, read once) = " + (f"{achieved / peak:.0%} of the card's {peak / 1e9:.0f} GB/s "
                                  "DRAM peak" if peak else "(this torch reports no peak)")
        + f"; R is {size * n_points * 4 / 2**20:.0f} MiB, so part of it may come from L2",
        f"  best final loss {best:.6g}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps of every fit")
    parser.add_argument("--throughput-steps", type=int, default=None,
                        help="steps for the throughput table (default: --steps)")
    parser.add_argument("--singles", type=int, default=32, help="singles timed of 256")
    parser.add_argument("--rounds", type=int, default=3,
                        help="sweep and singles timed this many times each, best kept")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--sizes", default="1,16,256,4096", help="throughput sweep sizes")
    parser.add_argument("--gpu", action="store_true", help="also print gpu_sweep_report()")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as a worker does
    print(f"# {platform.machine()} {platform.processor() or ''} torch {torch.__version__}, "
          f"{args.threads} thread(s), 2000 points, {args.steps} steps, float32, cpu")
    print(f"{'approach':9} {'K':>5} {'sweep s':>9} {'singles':>7} {'timed s':>9} "
          f"{'256 singles s':>12} {'speedup':>9} {'loss diff':>10}")
    for approach in ("nn", "autograd"):
        versus_singles(approach, 256, args.singles, args.steps, args.rounds)
    print("(\"256 singles s\" = the timed singles' seconds × 256 / singles timed; goal ≥ 20x)")
    steps = args.throughput_steps or args.steps
    print(f"\n# nn sweeps, {steps} steps, 2000 points")
    throughput([int(k) for k in args.sizes.split(",")], steps)
    if args.gpu:
        print()
        print(gpu_sweep_report())


if __name__ == "__main__":
    main()
