"""What requests use, made once per API process (``main.create_app``): the client, shared
by the threads blocking endpoints run in, and an asyncio Redis client that event streams
wait on. Endpoints take them as parameters typed ``Client`` and ``Listener``."""

from __future__ import annotations

from typing import Annotated

import redis.asyncio
from fastapi import Depends, Request

from polyfit.client import PolyfitClient


def client(request: Request) -> PolyfitClient:
    return request.app.state.client


def listener(request: Request) -> redis.asyncio.Redis:
    return request.app.state.listener


Client = Annotated[PolyfitClient, Depends(client)]
Listener = Annotated[redis.asyncio.Redis, Depends(listener)]
