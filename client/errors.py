"""The errors a user can cause or meet, each with the status the CLI exits with."""

from polyfit.client.status import ExitStatus


class PolyfitError(Exception):
    """Base of the client's errors; ``exit_status`` is what ``polyfit-client`` exits with."""

    exit_status = ExitStatus.JOB_FAILED


class JobFailed(PolyfitError):
    exit_status = ExitStatus.JOB_FAILED


class JobCancelled(JobFailed):
    """A job that ended cancelled (by ``cancel``), not failed."""


class InvalidRequest(PolyfitError):
    exit_status = ExitStatus.INVALID_REQUEST


class JobNotFound(PolyfitError):
    exit_status = ExitStatus.NOT_FOUND
    hint = "`polyfit-client list` shows the jobs this Redis holds"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint or self.hint


class SweepNotFound(JobNotFound):
    hint = "a sweep id is what `polyfit-client sweep` printed; sweeps expire with their members"


class RedisUnavailable(PolyfitError):
    exit_status = ExitStatus.REDIS_UNAVAILABLE


class WaitTimeout(PolyfitError):
    exit_status = ExitStatus.WAIT_TIMEOUT
