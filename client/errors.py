"""The errors a user can cause or meet, each with its CLI exit code."""


class PolyfitError(Exception):
    """Base of the client's errors; ``exit_code`` is what ``polyfit-client`` exits with."""

    exit_code = 1


class JobFailed(PolyfitError):
    exit_code = 1


class JobCancelled(JobFailed):
    exit_code = 1


class InvalidRequest(PolyfitError):
    exit_code = 2


class JobNotFound(PolyfitError):
    exit_code = 3
    hint = "`polyfit-client list` shows the jobs this Redis holds"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint or self.hint


class SweepNotFound(JobNotFound):
    hint = "a sweep id is what `polyfit-client sweep` printed; sweeps expire with their members"


class RedisUnavailable(PolyfitError):
    exit_code = 4


class WaitTimeout(PolyfitError):
    exit_code = 5
