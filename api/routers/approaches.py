"""``/api/approaches``: each approach's default request, for the submit form."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from polyfit.models import APPROACHES, FitRequest

router = APIRouter(prefix="/api/approaches", tags=["approaches"])


@router.get("")
def approaches() -> dict[str, dict[str, Any]]:
    """The request each approach runs when only its name is given."""
    return {name: FitRequest(approach=name).model_dump(mode="json", exclude={"data"})
            for name in APPROACHES}
