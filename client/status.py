"""How ``polyfit-client`` and ``polyfit-local`` exit: one status per outcome, the same in the
CLI, the docs and the tests."""

from enum import IntEnum, unique


@unique
class ExitStatus(IntEnum):
    SUCCESS = 0
    JOB_FAILED = 1  # failed or cancelled; also a sweep with no member that succeeded
    INVALID_REQUEST = 2  # a request, an option or a setting that cannot be used
    NOT_FOUND = 3  # no such job or sweep (or it expired)
    REDIS_UNAVAILABLE = 4  # unreachable, refusing writes, or not Redis
    WAIT_TIMEOUT = 5
    INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C while waiting
