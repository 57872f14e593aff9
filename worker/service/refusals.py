"""Messages a worker cannot run: it refuses them, keeps running, and fails their job if known.

Anything can be pushed onto a queue by whoever reaches Redis. Celery already drops a
message it cannot decode (not JSON, pickle, an unknown task name); ``Consumer`` adds that
the job the message names (the task id is the job id) is marked failed with the reason.
What Celery's handlers would choke on is dropped by the transport (``kombu_compat.py``),
which calls ``fail_job_of`` and ``time_limit_problem`` from here.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

from polyfit.models import JobError, messages
from polyfit.worker.service.app import store

log = logging.getLogger("polyfit.worker")


def fail_job_of(message: Any, reason: str) -> None:
    """Fail the queued job a refused message names, if any, with ``reason``."""
    headers = getattr(message, "headers", None)
    job_id = headers.get("id") if isinstance(headers, dict) else None
    if not isinstance(job_id, str) or not job_id:
        return
    try:
        store().fail_unclaimed(job_id, JobError(type="MessageRefused", message=reason))
    except Exception as error:  # Redis away: the message is dropped all the same
        log.warning("could not mark job %s failed: %s", job_id, error)


def time_limit_problem(headers: Any) -> str | None:
    """Why a message's ``timelimit`` header (hard, soft seconds) cannot be used, or None."""
    limits = headers.get("timelimit") if isinstance(headers, dict) else None
    if limits is None or (isinstance(limits, list) and len(limits) == 2 and all(
            limit is None or (type(limit) in (int, float) and math.isfinite(limit) and limit > 0)
            for limit in limits)):
        return None
    return f"timelimit must be [hard, soft] positive seconds or nulls, not {limits!r}"[:200]


class Consumer(CeleryConsumer):
    """Celery's consumer; each kind of refused message also fails its job."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        super().on_decode_error(message, exc)
        fail_job_of(message, f"refused a message whose body cannot be decoded: {exc}")

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        super().on_invalid_task(body, message, exc)
        fail_job_of(message, f"refused an invalid message: {exc}")

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        super().on_unknown_task(body, message, exc)
        name = message.headers.get("task") if isinstance(message.headers, dict) else None
        fail_job_of(message, f"refused a message for unknown task {name!r}; "
                             f"workers run {', '.join(map(repr, messages.TASKS))}")

    def on_unknown_message(self, body: Any, message: Any) -> None:
        super().on_unknown_message(body, message)
        fail_job_of(message, "refused a message that names no task")
