"""``/api/points``: a CSV file of points read as ``polyfit-client submit --data`` reads it,
for the dashboard to put into a request (one reader, client/data.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from polyfit.api.dependencies import Client
from polyfit.client.data import parse_points
from polyfit.client.errors import InvalidRequest

router = APIRouter(prefix="/api/points", tags=["points"])


@router.post("", openapi_extra={"requestBody": {"content": {"text/csv": {}}, "required": True}})
async def points(request: Request, polyfit: Client) -> dict[str, list[float]]:
    """The body's CSV rows (x,y or x,y,sigma; a header line is allowed) as ``data`` for a
    FitRequest; 400 naming the line of the first bad row."""
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError:
        raise InvalidRequest("data: the file is not a text CSV file") from None
    return parse_points(text.splitlines(), "the file", polyfit.settings)
