"""``/api/jobs``: submit, read, list, cancel, delete, and follow a job as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import numpy as np
import redis.asyncio
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from polyfit.api.dependencies import Client, Listener
from polyfit.client import PolyfitClient
from polyfit.client.errors import JobNotFound
from polyfit.models import FitRequest, JobState
from polyfit.models.curves import CURVE_POINTS, evaluate, sample
from polyfit.models.request import Approach
from polyfit.store.keys import events_channel

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
KEEP_ALIVE_SECONDS = 15.0


class Submitted(BaseModel):
    job_id: str


class Outcome(BaseModel):
    job_id: str
    outcome: str  # cancel: cancelled, requested, already <state>; delete: deleted


@router.post("", status_code=status.HTTP_201_CREATED)
def submit(request: FitRequest, polyfit: Client) -> Submitted:
    """Queue a fit; the body is a FitRequest, as ``polyfit-client submit --request`` takes."""
    return Submitted(job_id=polyfit.submit(request))


@router.get("")
def list_jobs(polyfit: Client, state: JobState | None = None,
              approach: Approach | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
    """Jobs newest first, as ``polyfit-client list --json`` prints them."""
    return [record.to_document()
            for record in polyfit.list(state.value if state else None, approach, limit)]


@router.get("/{job_id}")
def job(job_id: str, polyfit: Client) -> dict[str, Any]:
    """The document ``polyfit-client status --json`` prints."""
    return polyfit.status(job_id).to_document()


@router.get("/{job_id}/curve")
def curve(job_id: str, polyfit: Client) -> dict[str, Any]:
    """What the dashboard draws of a job: its points (thinned to at most ``CURVE_POINTS``)
    and the model on a grid over them, as fitted or, while it runs, as it stands."""
    record = polyfit.status(job_id)
    coefficients = (record.result.coefficients if record.result
                    else record.progress.coefficients if record.progress else None)
    if coefficients is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} has no curve yet: "
                            f"it is {record.state.value}")
    x, y = sample(record.request)
    step = max(1, len(x) // CURVE_POINTS)
    grid = np.linspace(x.min(), x.max(), CURVE_POINTS)
    fitted = evaluate(record.request["approach"], coefficients, record.request["degree"], grid)
    return {"x": x[::step].tolist(), "y": y[::step].tolist(), "grid": grid.tolist(),
            "fit": fitted.tolist(), "final": record.result is not None}


@router.post("/{job_id}/cancel")
def cancel(job_id: str, polyfit: Client) -> Outcome:
    return Outcome(job_id=job_id, outcome=polyfit.cancel(job_id))


@router.delete("/{job_id}")
def delete(job_id: str, polyfit: Client) -> Outcome:
    """Delete a job whatever its state (a running one stops first)."""
    if polyfit.delete([job_id])[job_id] == "missing":
        raise JobNotFound(f"job {job_id} not found")
    return Outcome(job_id=job_id, outcome="deleted")


@router.get("/{job_id}/events", response_class=StreamingResponse)
async def events(job_id: str, polyfit: Client, events_redis: Listener) -> StreamingResponse:
    """Server-Sent Events: a ``job`` event with the job's document at once and at each change
    of state or progress, until it ends; comments keep the connection alive meanwhile."""
    await run_in_threadpool(polyfit.status, job_id)  # 404 before the stream starts
    return StreamingResponse(_follow(job_id, polyfit, events_redis), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def _follow(job_id: str, polyfit: PolyfitClient,
                  events_redis: redis.asyncio.Redis) -> AsyncIterator[str]:
    """Waits for the job's events on the event loop: an open stream (a dashboard tab) that
    waited in a thread would hold one of the 40 that every other request is served from."""
    subscription = events_redis.pubsub(ignore_subscribe_messages=True)
    await subscription.subscribe(events_channel(job_id))
    try:
        sent = None
        while True:
            try:
                document = (await run_in_threadpool(polyfit.status, job_id)).to_document()
            except JobNotFound:  # deleted meanwhile
                yield "event: deleted\ndata: {}\n\n"
                return
            if document != sent:
                sent = document
                yield f"event: job\ndata: {json.dumps(document)}\n\n"
            if JobState(document["state"]).finished:
                return
            if await subscription.get_message(timeout=KEEP_ALIVE_SECONDS) is None:
                yield ": waiting\n\n"
    finally:
        with anyio.CancelScope(shield=True):  # a closed connection cancels the stream
            await subscription.aclose()
