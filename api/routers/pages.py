"""The dashboard: four pages of plain HTML and one script, no build step. The pages hold no
data; their script asks the API for it with the token kept in the browser's session."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
def jobs_page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.get("/submit")
def submit_page() -> FileResponse:
    return FileResponse(STATIC / "submit.html")


@router.get("/jobs/{job_id}")
def job_page(job_id: str) -> FileResponse:
    return FileResponse(STATIC / "job.html")


@router.get("/sweeps/{sweep_id}")
def sweep_page(sweep_id: str) -> FileResponse:
    return FileResponse(STATIC / "sweep.html")
