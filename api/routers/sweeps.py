"""``/api/sweeps``: submit a sweep and read it back with its members, best first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel

from polyfit.api.dependencies import Client
from polyfit.models.sweep import SweepRequest

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"])


class SweepSubmitted(BaseModel):
    sweep_id: str


@router.post("", status_code=status.HTTP_201_CREATED)
def submit(sweep: SweepRequest, polyfit: Client) -> SweepSubmitted:
    return SweepSubmitted(sweep_id=polyfit.sweep(sweep))


@router.get("/{sweep_id}")
def sweep(sweep_id: str, polyfit: Client) -> dict[str, Any]:
    """The document ``polyfit-client sweep-result --json`` prints."""
    return polyfit.sweep_result(sweep_id).to_document()
