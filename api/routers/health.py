"""``/healthz``: whether this API process reaches Redis (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from polyfit.api.dependencies import Client

router = APIRouter(tags=["health"])


@router.get("/healthz")
def health(polyfit: Client) -> JSONResponse:
    try:
        polyfit.store.redis.ping()
    except Exception as error:  # any failure to reach Redis is "unhealthy", said plainly
        return JSONResponse({"status": "unhealthy", "redis": str(error)}, status_code=503)
    return JSONResponse({"status": "ok"})
