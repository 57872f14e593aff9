"""The FastAPI application: routers, the token dependency, limits, and errors as JSON."""

from __future__ import annotations

import redis.asyncio
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polyfit.api.auth import RateLimit, authorized, load_tokens
from polyfit.api.metrics import RedisCollector
from polyfit.api.routers import choices, health, jobs, metrics, pages, points, sweeps
from polyfit.client import PolyfitClient
from polyfit.client.errors import JobNotFound, PolyfitError, RedisUnavailable
from polyfit.models import Settings

# What each client error answers over HTTP (the CLI's exit status, client/status.py).
STATUS_OF = {JobNotFound: 404, RedisUnavailable: 503}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="polyfit", version="0.1.0",
                  description="Curve fits as batch jobs: submit, follow, fetch, cancel.")
    app.state.tokens = load_tokens(settings)
    app.state.rate_limit = RateLimit(settings.api_rate_limit)
    app.state.client = PolyfitClient(settings.redis_url, settings)
    app.state.listener = redis.asyncio.Redis.from_url(
        settings.redis_url, decode_responses=True, socket_connect_timeout=5,
        health_check_interval=30)
    app.state.metrics = CollectorRegistry()
    app.state.metrics.register(RedisCollector(app.state.client.store.redis))
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.include_router(health.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    for router in (jobs.router, sweeps.router, choices.router, points.router,
                   metrics.router):
        app.include_router(router, dependencies=[Depends(authorized)])

    @app.exception_handler(PolyfitError)
    def polyfit_error(_: Request, error: PolyfitError) -> JSONResponse:
        hint = getattr(error, "hint", None)
        code = next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), 400)
        return JSONResponse({"detail": str(error)} | ({"hint": hint} if hint else {}),
                            status_code=code)

    return app


class BodyLimit:
    """413 for a request body over ``max_bytes``, declared or streamed, before it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse({"detail": f"the request body is over {self.max_bytes} bytes "
                                 "(POLYFIT_API_MAX_BODY_BYTES)"}, status_code=413)
        await response({"type": "http"}, _no_body, send)


class BodyTooLarge(Exception):
    pass


async def _no_body() -> Message:
    return {"type": "http.request", "body": b""}
