"""What a request may say, for the dashboard's forms: ``/api/choices`` (the allowed values of
each closed field, from the model types) and ``/api/approaches`` (each approach's defaults)."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter

from polyfit.models import APPROACHES, FitRequest, JobState
from polyfit.models.request import Approach, Device, Dtype, Optimizer, Target

router = APIRouter(tags=["choices"])


@router.get("/api/choices")
def choices() -> dict[str, list[str]]:
    """The values each closed field of a request (and a job's state) may take."""
    fields = {"approach": Approach, "target": Target, "optimizer": Optimizer,
              "device": Device, "dtype": Dtype}
    return {name: list(get_args(kind)) for name, kind in fields.items()} | {
        "state": [state.value for state in JobState]}


@router.get("/api/approaches")
def approaches() -> dict[str, dict[str, Any]]:
    """The request each approach runs when only its name is given."""
    return {name: FitRequest(approach=name).model_dump(mode="json", exclude={"data"})
            for name in APPROACHES}
