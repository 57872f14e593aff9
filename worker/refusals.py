"""Messages a worker cannot run: it refuses them, keeps running, and fails their job if known.

Anything can be pushed onto a queue by whoever reaches Redis. Celery already drops a
message it cannot decode (not JSON, pickle, an unknown task name); ``Consumer`` adds that
the job the message names (the task id is the job id) is marked failed with the reason.
Kombu's Redis transport, though, lets an item that is not a message envelope at all, or
a message Celery's own handler chokes on, raise out of the event loop and stop the worker;
``Transport`` drops those instead (without releasing the prefetch slot, the worker would
also stop consuming). A ``timelimit`` header that is not two positive numbers (or nulls) is
refused before Celery reads it: its pool arms timers with it in the main process, where
strings stop the worker and a single number takes a pool slot for good.
"""

from __future__ import annotations

import logging
import math
from queue import Empty
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis

from models import JobError
from worker.tasks import store

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
                             "workers run 'polyfit.fit'")

    def on_unknown_message(self, body: Any, message: Any) -> None:
        super().on_unknown_message(body, message)
        fail_job_of(message, "refused a message that names no task")


class Channel(kombu_redis.Channel):
    """Kombu's Redis channel, but one malformed queue item cannot stop the worker."""

    def _brpop_read(self, **options: Any) -> bool:
        try:
            return super()._brpop_read(**options)
        except (Empty, *self.connection_errors):
            raise
        except Exception as error:  # not a message envelope: dropped as it was popped
            log.error("dropped a malformed item from the queue: %s: %s",
                      type(error).__name__, str(error)[:200])
            raise Empty() from None

    def basic_consume(self, queue: str, no_ack: bool, callback: Any, consumer_tag: str,
                      **kwargs: Any) -> Any:
        def guarded(message: Any) -> Any:
            try:
                if problem := time_limit_problem(message.headers):
                    raise ValueError(problem)
                return callback(message)
            except self.connection_errors:
                raise
            except Exception as error:  # Celery could not take it: drop it, free the slot
                reason = f"refused a malformed message: {type(error).__name__}: {error}"
                log.error("%s", reason[:300])
                if not message.acknowledged:
                    message.reject(requeue=False)
                fail_job_of(message, reason[:500])

        return super().basic_consume(queue, no_ack, guarded, consumer_tag, **kwargs)


class Transport(kombu_redis.Transport):
    """Selected with ``broker_transport = "worker.refusals:Transport"``."""

    Channel = Channel
