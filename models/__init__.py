"""The contract between client and worker: requests, results, job records and their store."""

from models.job import FitResult, JobError, JobRecord, JobState, Progress
from models.request import APPROACHES, FitRequest, Points
from models.settings import Settings, celery_config
from models.store import JobNotFound, JobStore

__all__ = [
    "APPROACHES",
    "FitRequest",
    "FitResult",
    "JobError",
    "JobNotFound",
    "JobRecord",
    "JobState",
    "JobStore",
    "Points",
    "Progress",
    "Settings",
    "celery_config",
]
