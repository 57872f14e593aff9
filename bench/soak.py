"""A chaos soak: real workers, real Redis, real faults, for N minutes; then every job checked.

Starts a redis-server with append-only persistence, 2 ``polyfit-worker`` processes
(concurrency 1, 3 s leases) and 4 client threads that submit small jobs of random approaches,
each keeping ``IN_FLIGHT`` of its jobs queued or running (more would only grow a backlog
that outlasts the run), while a chaos loop takes turns: SIGKILL a worker (and start a new one),
restart Redis (SIGKILL, then start it on the same files), SIGSTOP a worker past its lease and
then resume it; between faults it cancels one of the newest jobs. Then it waits for every
job to end and checks:

- every job the clients were given an id for is in exactly one terminal state (lost: not);
- no job ran after its cancel was recorded (an attempt that started after the cancel);
- no job ended twice (its terminal states published, counted: see ``event_loop``);
- a sample of succeeded jobs equals a clean re-run of their request in this process.

Run: ``.venv/bin/python bench/soak.py --minutes 20``. Prints one table row.
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
import random  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import redis  # noqa: E402
import torch  # noqa: E402

from polyfit.client import PolyfitClient  # noqa: E402
from polyfit.client.embedded import EmbeddedRedis  # noqa: E402
from polyfit.client.errors import PolyfitError  # noqa: E402
from polyfit.models import FitRequest, JobState  # noqa: E402
from polyfit.worker.engine.fit import Report  # noqa: E402
from polyfit.worker.engine.run import run_fit  # noqa: E402

BIN = Path(sys.executable).parent
LEASE = 3.0
WORKER_ENV = {"POLYFIT_LEASE_SECONDS": str(LEASE), "POLYFIT_ORPHAN_SECONDS": "20",
              "CUDA_VISIBLE_DEVICES": ""}
APPROACHES = ["numpy", "tensor", "autograd", "legendre", "nn", "optim", "module"]
CHAOS_EVERY = 10.0  # seconds between faults
IN_FLIGHT = 3  # unfinished jobs per client
TERMINAL = {state.value for state in JobState if state.finished}


class Soak:
    def __init__(self, directory: Path, minutes: float) -> None:
        self.directory, self.minutes = directory, minutes
        self.server = EmbeddedRedis(directory=directory / "redis", appendonly=True).start()
        self.url = self.server.url
        self.workers: list[subprocess.Popen] = [self.start_worker(n) for n in range(2)]
        self.started_workers = 2
        self.submitted: dict[str, FitRequest] = {}
        self.cancelled_at: dict[str, float] = {}  # job id → when its cancel was recorded
        self.ends: Counter[str] = Counter()  # job id → terminal states recorded
        self.counts = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def start_worker(self, number: int) -> subprocess.Popen:
        log = open(self.directory / f"worker{number}.log", "ab")
        return subprocess.Popen(
            [str(BIN / "polyfit-worker"), "--queues", "cpu", "--concurrency", "1",
             "--hostname", f"soak{number}@%h", "--loglevel", "INFO"],
            env={**os.environ, **WORKER_ENV, "POLYFIT_REDIS_URL": self.url}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def submit_loop(self, seed: int) -> None:
        rng = random.Random(seed)
        client = PolyfitClient(self.url)
        mine: list[str] = []
        while not self.stop.is_set():
            try:
                mine = [job_id for job_id in mine
                        if not client.status(job_id).state.finished]
            except PolyfitError:  # Redis restarting
                time.sleep(0.5)
                continue
            if len(mine) >= IN_FLIGHT:
                time.sleep(0.1)
                continue
            request = FitRequest(approach=rng.choice(APPROACHES), seed=rng.randrange(1000),
                                 steps=rng.choice([200, 1000, 3000, 30000]), device="cpu")
            try:
                job_id = client.submit(request)
            except PolyfitError:  # Redis restarting: the submit said so, and no id was given
                self.counts["submits refused"] += 1
                time.sleep(0.5)
                continue
            with self.lock:
                self.submitted[job_id] = request
            mine.append(job_id)

    def event_loop(self) -> None:
        """Count each job's ends from the events published, across Redis restarts: its first
        terminal state, and any terminal state after a new claim (a delivery that finds the
        job ended publishes that state again, without a claim: not an end)."""
        claimed_since_end: set[str] = set()
        while not self.stop.is_set():
            try:
                events = redis.Redis.from_url(self.url, decode_responses=True).pubsub()
                events.psubscribe("polyfit:events:*")
                while not self.stop.is_set():
                    message = events.get_message(timeout=1.0)
                    if not message or message["type"] != "pmessage":
                        continue
                    job_id, event = message["channel"].rsplit(":", 1)[1], message["data"]
                    if event == "claimed":
                        claimed_since_end.add(job_id)
                    elif event in TERMINAL and (job_id not in self.ends
                                                or job_id in claimed_since_end):
                        self.ends[job_id] += 1
                        claimed_since_end.discard(job_id)
            except redis.RedisError:
                time.sleep(0.5)

    def chaos_loop(self) -> None:
        client = PolyfitClient(self.url)
        rng = random.Random(7)
        faults = [self.kill_worker, self.restart_redis, self.stop_worker]
        turn = 0
        while not self.stop.wait(CHAOS_EVERY / 2):
            self.cancel_newest(client, rng)
            if self.stop.wait(CHAOS_EVERY / 2):
                break
            faults[turn % len(faults)]()
            turn += 1

    def kill_worker(self) -> None:
        victim = random.randrange(len(self.workers))
        os.killpg(self.workers[victim].pid, signal.SIGKILL)
        self.workers[victim].wait()
        self.workers[victim] = self.start_worker(self.started_workers)
        self.started_workers += 1
        self.counts["kills"] += 1

    def restart_redis(self) -> None:
        self.server.kill()
        time.sleep(1.0)
        self.server.start()
        self.counts["restarts"] += 1

    def stop_worker(self) -> None:
        victim = self.workers[random.randrange(len(self.workers))]
        os.killpg(victim.pid, signal.SIGSTOP)
        time.sleep(2 * LEASE + 1)  # past its lease and the reaper's grace
        os.killpg(victim.pid, signal.SIGCONT)
        self.counts["stops"] += 1

    def cancel_newest(self, client: PolyfitClient, rng: random.Random) -> None:
        """Cancel one of the newest jobs (queued or running: older ones have ended)."""
        with self.lock:
            newest = list(self.submitted)[-4:]
        if not newest:
            return
        job_id = rng.choice(newest)
        try:
            if client.cancel(job_id) in ("cancelled", "requested"):
                self.cancelled_at[job_id] = time.time()
                self.counts["cancels"] += 1
        except PolyfitError:
            pass

    def run(self) -> None:
        threads = [threading.Thread(target=self.submit_loop, args=(n,)) for n in range(4)]
        threads += [threading.Thread(target=self.chaos_loop),
                    threading.Thread(target=self.event_loop)]
        for thread in threads:
            thread.start()
        time.sleep(self.minutes * 60)
        self.stop.set()
        for thread in threads:
            thread.join()
        self.stop.clear()
        events = threading.Thread(target=self.event_loop)
        events.start()
        self.check()
        self.stop.set()
        events.join()

    def check(self) -> None:
        client = PolyfitClient(self.url)
        deadline = time.monotonic() + 300
        records = {}
        for job_id in self.submitted:
            try:
                records[job_id] = client.status(job_id)
                while (records[job_id].state.value not in TERMINAL
                       and time.monotonic() < deadline):
                    time.sleep(1)
                    records[job_id] = client.status(job_id)
            except PolyfitError:
                pass
        time.sleep(2)  # the last events
        lost = [job_id for job_id in self.submitted
                if job_id not in records or records[job_id].state.value not in TERMINAL]
        after_cancel = [job_id for job_id, at in self.cancelled_at.items()
                        if (started := records[job_id].started_at) and started > at]
        duplicated = [job_id for job_id, n in self.ends.items() if n > 1]
        succeeded = [r for r in records.values() if r.state == JobState.SUCCEEDED]
        torch.set_num_threads(1)
        sample = random.Random(3).sample(succeeded, min(10, len(succeeded)))
        equal = sum(rerun(record.fit_request) == record.result.coefficients
                    for record in sample)
        states = Counter(r.state.value for r in records.values())
        print("| minutes | jobs | succeeded / failed / cancelled | kills | Redis restarts | stops "
              "| cancels | submits refused | lost | ran after cancel | ended twice (of ends seen) "
              "| re-run equal |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        print(f"| {self.minutes:g} | {len(self.submitted)} | {states['succeeded']} / "
              f"{states['failed']} / {states['cancelled']} | {self.counts['kills']} | "
              f"{self.counts['restarts']} | {self.counts['stops']} | {self.counts['cancels']} | "
              f"{self.counts['submits refused']} | {len(lost)} | {len(after_cancel)} | "
              f"{len(duplicated)} (of {len(self.ends)}) | {equal} of {len(sample)} |")
        if lost or after_cancel or duplicated or equal < len(sample):
            print("lost:", lost[:10], "after cancel:", after_cancel[:10],
                  "duplicated:", duplicated[:10])
            failed = [r for r in records.values() if r.state == JobState.FAILED][:5]
            print("failed, for example:", [(r.job_id, r.error) for r in failed])

    def close(self) -> None:
        for worker in self.workers:
            try:
                os.killpg(worker.pid, signal.SIGCONT)
                os.killpg(worker.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for worker in self.workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        self.server.stop()


def rerun(request: FitRequest) -> dict[str, float]:
    """The request fitted again in this process, as a clean run."""
    return run_fit(request, Report(request.record_every or 1, request.steps or 0),
                   "cpu").coefficients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="polyfit-soak-"))
    print(f"# logs in {directory}; {os.cpu_count()} cores; faults every {CHAOS_EVERY:g} s, "
          f"leases {LEASE:g} s", flush=True)
    soak = Soak(directory, args.minutes)
    try:
        soak.run()
    finally:
        soak.close()


if __name__ == "__main__":
    main()
