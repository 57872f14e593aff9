"""Each approach against the tutorial's loop as written (corrected), in one process, on one
thread, from the same initial coefficients and for the same steps.

Prints, per approach, polyfit's fit time over the tutorial's (goal ≤ 0.5) and both final
losses (goal: equal, relative 1e-4). Run: ``.venv/bin/python bench/approaches.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and bench/queue.py would hide the
# standard library's `queue`: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from bench import tutorial  # noqa: E402
from models import FitRequest  # noqa: E402
from worker.fit import Report, make_problem  # noqa: E402
from worker.run import run_fit  # noqa: E402


def best_of(repeat: int, run) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - started)
    return best, value


def compare(approach: str, repeat: int, steps: int | None) -> dict:
    request = FitRequest(approach=approach, seed=0, steps=steps)
    problem = make_problem(request, "cpu")
    ours, result = best_of(repeat, lambda: run_fit(request, Report(request.record_every,
                                                                   request.steps), "cpu"))
    start = list(result.initial_coefficients.values())
    program = tutorial.PROGRAMS[approach]
    extra = {"seed": request.seed} if approach == "dynamic" else {}
    theirs, (_, reference_loss) = best_of(repeat, lambda: program(
        start, problem.x, problem.y, request.steps, request.learning_rate, **extra))
    return {"approach": approach, "steps": request.steps, "polyfit_s": ours,
            "tutorial_s": theirs, "ratio": ours / theirs, "polyfit_loss": result.final_loss,
            "tutorial_loss": reference_loss,
            "rel_diff": abs(result.final_loss - reference_loss) / abs(reference_loss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--steps", type=int, default=None, help="override every approach's steps")
    parser.add_argument("approaches", nargs="*", default=list(tutorial.PROGRAMS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# {platform.machine()} {platform.processor() or ''} torch {torch.__version__}, "
          f"1 thread, best of {args.repeat}")
    print(f"{'approach':9} {'steps':>6} {'polyfit s':>10} {'tutorial s':>10} {'ratio':>6} "
          f"{'polyfit loss':>13} {'tutorial loss':>13} {'rel diff':>9}")
    for approach in args.approaches:
        row = compare(approach, args.repeat, args.steps)
        print(f"{row['approach']:9} {row['steps']:>6} {row['polyfit_s']:>10.4f} "
              f"{row['tutorial_s']:>10.4f} {row['ratio']:>6.2f} {row['polyfit_loss']:>13.6f} "
              f"{row['tutorial_loss']:>13.6f} {row['rel_diff']:>9.1e}", flush=True)


if __name__ == "__main__":
    main()
