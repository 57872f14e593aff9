"""Counters for metrics, kept in Redis beside the records so that every worker and API
process reads the same totals, and they survive restarts (append-only file).

The state changes count themselves (``lua/prelude.lua``: finished jobs by state and
approach; ``reap.lua`` and ``resent.lua``: messages sent again); this module adds the
submissions, each successful fit's seconds, and the workers' signs of life.
"""

from __future__ import annotations

import time
from typing import Any

from redis.client import Pipeline

from polyfit.models.job import FitResult
from polyfit.store.keys import RUNNING, STATS, broker_lists

FIT_SECONDS_BUCKETS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
WORKER_SEEN_FOR = 3600  # seconds a worker that stopped announcing itself is still listed


def count_submitted(pipe: Pipeline, approach: str, sweep_member: bool) -> None:
    pipe.hincrby(f"{STATS}:submitted", approach, 1)
    if sweep_member:
        pipe.hincrby(f"{STATS}:sweep_members", approach, 1)


def observe_fit(pipe: Pipeline, approach: str, result: FitResult) -> None:
    """Add a successful fit's seconds to its (approach, device) histogram."""
    pipe.sadd(f"{STATS}:fit_seconds", f"{approach}:{result.device}")
    key = f"{STATS}:fit_seconds:{approach}:{result.device}"
    for bound in FIT_SECONDS_BUCKETS:
        if result.fit_seconds <= bound:
            pipe.hincrby(key, repr(bound), 1)
    pipe.hincrby(key, "count", 1)
    pipe.hincrbyfloat(key, "sum", result.fit_seconds)


def announce(pipe: Pipeline, worker: str) -> None:
    """A worker's sign of life (its reaper thread calls it every few seconds)."""
    pipe.hset(f"{STATS}:workers", worker, repr(time.time()))


def read(client: Any, queues: tuple[str, ...] = ("cpu", "cuda")) -> dict[str, Any]:
    """Every counter and gauge, in two round trips, for a scrape; workers not heard from
    for ``WORKER_SEEN_FOR`` seconds are left out."""
    histograms = sorted(client.smembers(f"{STATS}:fit_seconds"))
    hashes = ("submitted", "sweep_members", "finished", "workers")
    lists = {queue: broker_lists(queue) for queue in queues}
    pipe = client.pipeline(transaction=False)
    for name in hashes:
        pipe.hgetall(f"{STATS}:{name}")
    pipe.get(f"{STATS}:requeues")
    pipe.get(f"{STATS}:resent")
    pipe.scard(RUNNING)
    for names in lists.values():
        for name in names:
            pipe.llen(name)
    for name in histograms:
        pipe.hgetall(f"{STATS}:fit_seconds:{name}")
    values = iter(pipe.execute())  # read back in the order the commands were queued
    counters = {name: next(values) for name in hashes}
    requeues, resent, running = next(values), next(values), next(values)
    return {
        **counters,
        "workers": {worker: float(seen) for worker, seen in counters["workers"].items()
                    if time.time() - float(seen) < WORKER_SEEN_FOR},
        "requeues": int(requeues or 0), "resent": int(resent or 0),
        "running": running,
        "queues": {queue: sum(next(values) for _ in names) for queue, names in lists.items()},
        "fit_seconds": {tuple(name.split(":")): next(values) for name in histograms},
    }
