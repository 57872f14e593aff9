"""The dashboard: four pages of plain HTML, each with its own script, no build step. The pages
hold no data; their scripts ask the API for it with the token kept in the browser's session,
and insert every value as text. The policy below lets a page run only the scripts served from
``/static``: no inline script, no ``eval``, nothing from elsewhere."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
router = APIRouter(include_in_schema=False)


def page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, headers=PAGE_HEADERS)


@router.get("/")
def jobs_page() -> FileResponse:
    return page("index.html")


@router.get("/submit")
def submit_page() -> FileResponse:
    return page("submit.html")


@router.get("/jobs/{job_id}")
def job_page(job_id: str) -> FileResponse:
    return page("job.html")


@router.get("/sweeps/{sweep_id}")
def sweep_page(sweep_id: str) -> FileResponse:
    return page("sweep.html")


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """For clients that ask for it whatever the pages link (the pages link the SVG)."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")
