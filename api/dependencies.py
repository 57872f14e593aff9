"""What requests use, made once per API process (``main.create_app``): the client, shared
by the threads blocking endpoints run in, and an asyncio Redis client that event streams
wait on."""

from __future__ import annotations

import redis.asyncio
from fastapi import Request

from polyfit.client import PolyfitClient


def client(request: Request) -> PolyfitClient:
    return request.app.state.client


def listener(request: Request) -> redis.asyncio.Redis:
    return request.app.state.listener
