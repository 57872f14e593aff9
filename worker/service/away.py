"""Redis away (restarting, unreachable, or full): what a running fit does without for a
while, and what it waits out rather than failing for it or being run again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")
log = logging.getLogger("polyfit.worker")

REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError)
_warned_at = 0.0


def unless_away(call: Callable[[], T], fallback: T, what: str) -> T:
    """``call()``, or ``fallback`` while Redis is away or full: for a running fit's progress
    writes and cancel checks, which it can do without for a while."""
    try:
        return call()
    except REDIS_AWAY as error:
        _warn_away(what, error)
        return fallback


def until_written(write: Callable[[], T], what: str) -> T:
    """``write()``, tried again with backoff until Redis takes it: a fit's outcome is kept in
    the process until it is recorded (its lease is renewed again as soon as Redis is back,
    and the reaper gives a lapsed lease a lease's time before it re-queues the job)."""
    delay = 0.5
    while True:
        try:
            return write()
        except REDIS_AWAY as error:
            _warn_away(what, error)
            time.sleep(delay)
            delay = min(2 * delay, 10.0)


def _warn_away(what: str, error: Exception) -> None:
    """One warning per 10 s at most: progress writes come ten times a second."""
    global _warned_at
    if time.monotonic() - _warned_at >= 10:
        _warned_at = time.monotonic()
        log.warning("%s: Redis is away or full (%s); waiting it out", what, error)
