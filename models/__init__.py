"""The contract between client and worker: requests, results, job records, messages,
settings."""

from polyfit.models import messages
from polyfit.models.job import FitResult, JobError, JobRecord, JobState, Progress
from polyfit.models.request import APPROACHES, FitRequest, Points
from polyfit.models.settings import Settings, celery_config
from polyfit.models.statistics import FitStatistics

__all__ = [
    "APPROACHES",
    "FitRequest",
    "FitResult",
    "FitStatistics",
    "JobError",
    "JobRecord",
    "JobState",
    "Points",
    "Progress",
    "Settings",
    "celery_config",
    "messages",
]
