"""The Celery app (JSON only, late acks, one message at a time, the reaper and heartbeat as
worker steps) and this process's store.

Start a worker with ``polyfit-worker --queues cpu`` or
``celery -A polyfit.worker.service.app worker -Q cpu``.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery, Task
from celery.exceptions import Reject

from polyfit.models import Settings, celery_config
from polyfit.store import SweepStore
from polyfit.worker.service.heartbeat import Heartbeat
from polyfit.worker.service.reaper import Reaper


class RequeuingTask(Task):
    """A task whose retry, when the retry's message cannot be sent (Redis away), puts the
    delivery back in the queue rather than dropping it as Celery does: its job is still
    queued, and nothing else would send it again."""

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().retry(*args, **kwargs)
        except Reject as dropped:
            raise Reject(dropped.reason, requeue=True) from None


settings = Settings()
app = Celery("polyfit", task_cls=RequeuingTask)
app.conf.update(
    celery_config(settings),
    broker_transport="polyfit.worker.service.kombu_compat:Transport",  # malformed items dropped
    worker_consumer="polyfit.worker.service.refusals:Consumer",  # a refused message fails its job
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_time_limit=settings.hard_time_limit,
    # The fit checks the soft limit itself; Celery's, a little later, stops one stuck in Python.
    task_soft_time_limit=settings.soft_time_limit
    + min(5.0, (settings.hard_time_limit - settings.soft_time_limit) / 2),
    broker_connection_max_retries=None,  # keep reconnecting to Redis, never give up
    worker_cancel_long_running_tasks_on_connection_loss=False,
    worker_hijack_root_logger=False,
    worker_send_task_events=settings.task_events,  # Flower's task list (docs/DEPLOY.md)
    worker_proc_alive_timeout=60.0,  # a pool process warms up before it reports (tasks.py)
    imports=["polyfit.worker.service.tasks", "polyfit.worker.service.sweep_tasks",
             "polyfit.worker.service.ping"],
)

_store: SweepStore | None = None


def store() -> SweepStore:
    """The job store (with sweeps) of this process, made after any fork; all tasks share it."""
    global _store
    if _store is None:
        _store = SweepStore.from_url(settings.redis_url, settings)
    return _store


# Redis away is transient: a delivery is retried with backoff, for as long as it takes (a
# limit would end in acknowledging the message of a job still queued: lost). Anything else
# fails the job.
RETRY_TRANSIENT = {"autoretry_for": (redis.ConnectionError, redis.TimeoutError),
                   "retry_backoff": True, "retry_backoff_max": 60, "max_retries": None}


app.steps["worker"].add(Reaper)
app.steps["consumer"].add(Heartbeat)
