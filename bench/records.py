"""What finished jobs cost Redis, and what listing them costs as they pile up.

Fills an embedded redis-server (no persistence) with finished default legendre jobs, written
the way a worker writes them (the store's own create, claim and finish scripts), one in a
hundred failed, and at each size prints:

- Redis memory per finished job (``used_memory`` grown ÷ jobs added);
- ``list --state failed --limit 20`` served from the indexes (median of 20 calls), against
  the same answer found by scanning the newest jobs until 20 failed ones turned up, as
  ``list`` did before the indexes (the reference, measured in the same run), and the
  ratio. Goal: under 50 ms at 1,000,000 jobs.
- the same through ``polyfit-client list`` (one process start included, best of 3).

Run: ``.venv/bin/python bench/records.py [--sizes 10000 100000 1000000]`` (1M jobs take
about 3 GB of memory in Redis and a few minutes to write).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where bench/queue.py would hide the
# standard library's `queue`: put the repository root there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from polyfit.client.embedded import EmbeddedRedis  # noqa: E402
from polyfit.models import FitRequest, JobError, JobState, Settings  # noqa: E402
from polyfit.models.job import JobRecord  # noqa: E402
from polyfit.store import JobStore  # noqa: E402
from polyfit.store.keys import JOBS, job_key  # noqa: E402
from polyfit.worker.engine.fit import Report  # noqa: E402
from polyfit.worker.engine.run import run_fit  # noqa: E402

BIN = Path(sys.executable).parent
REQUEST = FitRequest(approach="legendre", seed=1)
FAILED_EVERY = 100
BATCH = 2000


def fill(store: JobStore, first: int, last: int, result_json: str) -> None:
    """Jobs number ``first`` to ``last`` - 1, finished as a worker finishes them."""
    error = JobError(type="Planted", message="bench/records.py").model_dump_json()
    for start in range(first, last, BATCH):
        numbers = range(start, min(start + BATCH, last))
        job_ids = [uuid.uuid4().hex for _ in numbers]
        pipe = store.redis.pipeline(transaction=False)
        now = time.time()
        for job_id in job_ids:
            store.add_queued(pipe, job_id, REQUEST, now)
            store.queue_claim(pipe, job_id, job_id, "bench")
        for number, job_id in zip(numbers, job_ids, strict=True):
            if number % FAILED_EVERY == FAILED_EVERY - 1:
                store.end(job_id, job_id, JobState.FAILED, pipe, error=error)
            else:
                store.end(job_id, job_id, JobState.SUCCEEDED, pipe, result=result_json)
        pipe.execute()


def scanned_failed(store: JobStore, limit: int) -> list[JobRecord]:
    """The reference: the newest jobs read 200 at a time until ``limit`` failed ones."""
    found: list[JobRecord] = []
    start = 0
    while len(found) < limit and (ids := store.redis.zrevrange(JOBS, start, start + 199)):
        pipe = store.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(job_key(job_id))
        found += [record for record in map(JobRecord.from_hash, pipe.execute())
                  if record.state.value == "failed"]
        start += 200
    return found[:limit]


def median_seconds(call, repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cli_seconds(url: str) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([str(BIN / "polyfit-client"), "--redis-url", url, "list", "--state",
                        "failed", "--limit", "20"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    request = REQUEST.model_copy()
    result_json = run_fit(request, Report(request.record_every or 1, request.steps or 0),
                          "cpu").model_dump_json()
    server = EmbeddedRedis().start()
    try:
        store = JobStore.from_url(server.url, Settings(redis_url=server.url))
        print(f"# finished default legendre jobs ({len(result_json)} B of result JSON), "
              f"1 in {FAILED_EVERY} failed; redis-server {store.redis.info()['redis_version']}")
        print("| jobs | Redis memory per job | list --state failed --limit 20 (index) "
              "| scan (reference) | ratio | polyfit-client list (process) |")
        print("|---|---|---|---|---|---|")
        held, memory = 0, store.redis.info("memory")["used_memory"]
        for size in sorted(args.sizes):
            fill(store, held, size, result_json)
            grown = store.redis.info("memory")["used_memory"] - memory
            indexed = store.list(20, {"failed"})
            assert [r.job_id for r in indexed] == [r.job_id for r in scanned_failed(store, 20)]
            index = median_seconds(lambda: store.list(20, {"failed"}))
            scan = median_seconds(lambda: scanned_failed(store, 20))
            print(f"| {size:,} | {grown / size:,.0f} B | {index * 1e3:.2f} ms | "
                  f"{scan * 1e3:.2f} ms | {index / scan:.3f} | "
                  f"{cli_seconds(server.url) * 1e3:.0f} ms |", flush=True)
            held = size
    finally:
        server.stop()


if __name__ == "__main__":
    main()
