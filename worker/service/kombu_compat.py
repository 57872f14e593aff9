"""The one place polyfit reaches into kombu's private Redis transport (checked with kombu
5.7.0 (celery 5.7.0); ``tests/test_compat.py`` fails loudly when the shapes below change).

Kombu's Redis transport lets an item that is not a message envelope at all, or a message
Celery's own handler chokes on, raise out of the event loop and stop the worker. ``Channel``
drops those instead (and releases the prefetch slot, else the worker would stop consuming),
and refuses a ``timelimit`` header that is not two positive numbers (or nulls) before Celery
reads it: its pool arms timers with it in the main process, where strings stop the worker
and a single number takes a pool slot for good. ``QoS`` acknowledges outside a transaction:
a full Redis (maxmemory) refuses every command queued in MULTI, deletions too, and a refused
acknowledgement stopped the worker; ZREM and HDEL alone are allowed, and free memory.

Private names used: ``kombu.transport.redis.Channel._brpop_read(**options)`` (pops one item
and hands it to the consumer's callback; raises ``queue.Empty`` when there is none) and
``Channel.basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)`` (public in AMQP
terms, but its callback contract is the transport's own);
``kombu.transport.redis.QoS._remove_from_indices(delivery_tag, pipe=None)`` (queues the
deletion of an acknowledged message on ``pipe``, by default a transaction of its own; the
caller executes it).
"""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis

from polyfit.worker.service.refusals import fail_job_of, time_limit_problem

log = logging.getLogger("polyfit.worker")


class QoS(kombu_redis.QoS):
    """Kombu's unacked-message bookkeeping, acknowledging even when Redis is full."""

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        if pipe is not None:
            return super()._remove_from_indices(delivery_tag, pipe)
        with self.channel.conn_or_acquire() as client:
            return super()._remove_from_indices(delivery_tag, client.pipeline(transaction=False))


class Channel(kombu_redis.Channel):
    """Kombu's Redis channel, but one malformed queue item cannot stop the worker, nor a
    full Redis an acknowledgement."""

    QoS = QoS

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
    """Selected with ``broker_transport = "polyfit.worker.service.kombu_compat:Transport"``."""

    Channel = Channel
