"""Bearer tokens and each token's request budget, as FastAPI dependencies.

Tokens come from ``POLYFIT_API_TOKENS`` (comma-separated) and ``POLYFIT_API_TOKENS_FILE``
(one per line); a request without one of them gets 401. Tokens are compared in constant
time and never logged: uvicorn's access log shows the request line, and the API takes no
token in a query string.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from polyfit.models import Settings

bearer = HTTPBearer(auto_error=False, description="a token from POLYFIT_API_TOKENS")


def load_tokens(settings: Settings) -> frozenset[str]:
    """Every token the API accepts; refuses to start with none."""
    tokens = {token.strip() for token in (settings.api_tokens or "").split(",")}
    if settings.api_tokens_file:
        tokens |= {line.strip() for line in Path(settings.api_tokens_file).read_text().splitlines()}
    tokens.discard("")
    if not tokens:
        raise ValueError("no API token: set POLYFIT_API_TOKENS (comma-separated) or "
                         "POLYFIT_API_TOKENS_FILE (one per line)")
    return frozenset(tokens)


class RateLimit:
    """At most ``per_minute`` requests per token in any sliding minute (per API process)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, token: str) -> float:
        """0 when this request may go ahead (and counts it), else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(token, deque())
            while seen and now - seen[0] >= 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                return 60 - (now - seen[0])
            seen.append(now)
            return 0.0


def authorized(request: Request,
               credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
               ) -> str:
    """The caller's token, once it is known and within its budget; else 401 or 429."""
    given = credentials.credentials if credentials else ""
    if not any(hmac.compare_digest(given, token) for token in request.app.state.tokens):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid bearer token is required "
                            "(Authorization: Bearer TOKEN)", headers={"WWW-Authenticate": "Bearer"})
    if wait := request.app.state.rate_limit.retry_after(given):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"more than {request.app.state.rate_limit.per_minute} requests a "
                            f"minute; retry in {wait:.0f} s",
                            headers={"Retry-After": str(max(1, round(wait)))})
    return given
