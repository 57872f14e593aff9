"""The client every request uses: one per API process, shared by its threads."""

from __future__ import annotations

from fastapi import Request

from polyfit.client import PolyfitClient


def client(request: Request) -> PolyfitClient:
    return request.app.state.client
