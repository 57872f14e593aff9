"""How many intra-op threads a fit runs on: one for a small problem, where waking a second
thread costs more than it gives, the process's share of the cores for a large one."""

from __future__ import annotations

import os

import torch

# Points × members from which a fit runs on the process's share of the cores: above every
# case ``bench/scaling.py --only threads`` has measured (docs/PERFORMANCE.md, the decision
# "threads by problem size": none gained from a second thread). Rerun it on more cores
# before lowering this.
THREADS_PAY_FROM = 50_000_000


def process_share() -> int:
    """The threads this process may use: ``POLYFIT_TORCH_THREADS`` (``polyfit-worker`` sets it
    to the cores over its concurrency), else torch's default."""
    return int(os.environ.get("POLYFIT_TORCH_THREADS") or 0) or torch.get_num_threads()


def use_threads_for(elements: int, share: int) -> int:
    """Set torch's threads for a fit of ``elements`` (points × members): one below
    ``THREADS_PAY_FROM``, else ``share``; returns the count."""
    threads = share if elements >= THREADS_PAY_FROM else 1
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
