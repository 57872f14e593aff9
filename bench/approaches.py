"""Each approach against the tutorial's loop as written (corrected), in one process, on one
thread, from the same initial coefficients and for the same steps.

Prints, per approach, polyfit's fit time over the tutorial's (goal ≤ 0.5) and the relative
difference of the final losses (goal: ≤ 1e-4): as a worker runs it by default (its steps
replayed, worker/engine/replay.py, where the approach uses autograd), and compiled
(POLYFIT_COMPILE) for the approaches that compile: their best of N after a first fit that
compiles, as in a worker that has run one such job; that first fit's time is printed too.
Run: ``.venv/bin/python bench/approaches.py``.
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
from polyfit.models import FitRequest  # noqa: E402
from polyfit.worker.engine.approaches import compiles  # noqa: E402
from polyfit.worker.engine.fit import Report, make_problem  # noqa: E402
from polyfit.worker.engine.run import run_fit  # noqa: E402
from polyfit.worker.service.memory import keep_freed_memory  # noqa: E402


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

    def polyfit(compiled: bool):
        return run_fit(request, Report(request.record_every, request.steps), "cpu", compiled)

    default_s, result = best_of(repeat, lambda: polyfit(False))
    start = list(result.initial_coefficients.values())
    program = tutorial.PROGRAMS[approach]
    extra = {"seed": request.seed} if approach == "dynamic" else {}
    tutorial_s, (_, reference) = best_of(repeat, lambda: program(
        start, problem.x, problem.y, request.steps, request.learning_rate, **extra))
    row = {"approach": approach, "steps": request.steps, "tutorial_s": tutorial_s,
           "default_s": default_s, "default_diff": abs(result.final_loss - reference) / reference}
    if compiles(request):
        row["first_s"], _ = best_of(1, lambda: polyfit(True))
        row["compiled_s"], compiled = best_of(repeat, lambda: polyfit(True))
        row["compiled_diff"] = abs(compiled.final_loss - reference) / reference
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--steps", type=int, default=None, help="override every approach's steps")
    parser.add_argument("approaches", nargs="*", default=list(tutorial.PROGRAMS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # as a worker does
    print(f"# {platform.machine()} {platform.processor() or ''} torch {torch.__version__}, "
          f"1 thread, best of {args.repeat}; ratio = polyfit s / tutorial s")
    print(f"{'approach':9} {'steps':>6} {'tutorial s':>10} | {'default s':>9} {'ratio':>6} "
          f"{'rel diff':>8} | {'compiled s':>10} {'ratio':>6} {'rel diff':>8} {'1st fit s':>9}")
    for approach in args.approaches:
        row = compare(approach, args.repeat, args.steps)
        line = (f"{row['approach']:9} {row['steps']:>6} {row['tutorial_s']:>10.4f} | "
                f"{row['default_s']:>9.4f} {row['default_s'] / row['tutorial_s']:>6.2f} "
                f"{row['default_diff']:>8.1e} | ")
        if "compiled_s" in row:
            line += (f"{row['compiled_s']:>10.4f} {row['compiled_s'] / row['tutorial_s']:>6.2f} "
                     f"{row['compiled_diff']:>8.1e} {row['first_s']:>9.2f}")
        else:
            line += f"{'—':>10}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
