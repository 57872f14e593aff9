"""The polyfit client: ``PolyfitClient`` and the ``polyfit-client`` CLI. Needs no torch."""

from polyfit.client.api import PolyfitClient
from polyfit.client.errors import (
    InvalidRequest,
    JobCancelled,
    JobFailed,
    JobNotFound,
    PolyfitError,
    RedisUnavailable,
    WaitTimeout,
)

__all__ = [
    "InvalidRequest",
    "JobCancelled",
    "JobFailed",
    "JobNotFound",
    "PolyfitClient",
    "PolyfitError",
    "RedisUnavailable",
    "WaitTimeout",
]
