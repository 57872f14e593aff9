"""Prometheus metrics, read from Redis at each scrape (``store/stats.py``): every worker's
and API process's counts in one place, surviving restarts.

Names follow Prometheus' conventions: ``polyfit_`` prefix, ``_total`` for counters,
``_seconds`` for durations, labels for the dimensions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from polyfit.store import stats


class RedisCollector(Collector):
    """Collects polyfit's metrics from ``client`` (a redis-py client) when scraped."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def collect(self) -> Iterator[Any]:
        now = stats.read(self.client)
        submitted = CounterMetricFamily("polyfit_jobs_submitted", "Jobs submitted, sweep "
                                        "members included", labels=["approach"])
        for approach, count in sorted(now["submitted"].items()):
            submitted.add_metric([approach], int(count))
        yield submitted
        finished = CounterMetricFamily("polyfit_jobs", "Jobs that ended, by approach and "
                                       "final state", labels=["approach", "state"])
        for key, count in sorted(now["finished"].items()):
            state, approach = key.split(":", 1)
            finished.add_metric([approach, state], int(count))
        yield finished
        members = CounterMetricFamily("polyfit_sweep_members", "Sweep members submitted",
                                      labels=["approach"])
        for approach, count in sorted(now["sweep_members"].items()):
            members.add_metric([approach], int(count))
        yield members
        yield CounterMetricFamily("polyfit_requeues", "Running jobs re-queued by the reaper "
                                  "(their worker stopped renewing the lease)",
                                  value=now["requeues"])
        yield CounterMetricFamily("polyfit_messages_resent", "Queued jobs sent again because "
                                  "their message was gone", value=now["resent"])
        depth = GaugeMetricFamily("polyfit_queue_depth", "Messages waiting in a queue",
                                  labels=["queue"])
        for queue, length in now["queues"].items():
            depth.add_metric([queue], length)
        yield depth
        yield GaugeMetricFamily("polyfit_jobs_running", "Jobs running now",
                                value=now["running"])
        seen = GaugeMetricFamily("polyfit_worker_heartbeat_age_seconds", "Seconds since a "
                                 "worker last said it was alive", labels=["worker"])
        for worker, at in sorted(now["workers"].items()):
            seen.add_metric([worker], max(0.0, time.time() - at))
        yield seen
        fits = HistogramMetricFamily("polyfit_fit_seconds", "Seconds a successful fit took",
                                     labels=["approach", "device"])
        for (approach, device), fields in sorted(now["fit_seconds"].items()):
            buckets = [(repr(bound), int(fields.get(repr(bound), 0)))
                       for bound in stats.FIT_SECONDS_BUCKETS]
            buckets.append(("+Inf", int(fields.get("count", 0))))
            fits.add_metric([approach, device], buckets, float(fields.get("sum", 0.0)))
        yield fits
