"""``polyfit.ping``: a task that does nothing but answer, to measure the queue itself."""

from __future__ import annotations

import redis

from polyfit.models import messages
from polyfit.worker.service.app import app, settings

_redis: redis.Redis | None = None


@app.task(name=messages.PING)
def ping(reply_key: str) -> None:
    """Push one item onto ``reply_key``; the sender waits for it with BLPOP."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.redis_url)
    _redis.lpush(reply_key, 1)
