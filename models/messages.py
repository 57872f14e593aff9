"""The Celery messages polyfit sends, for the client, the API, the worker, the reaper's
re-sends and the tests alike: the task names and what a message carries.

A message carries the id of a job (``polyfit.fit``) or sweep (``polyfit.sweep``) and nothing
else; its task id is that id too. The request lives in the job's or sweep's record in Redis,
the only copy: the worker's claim returns it and the worker validates that one.
"""

from __future__ import annotations

from typing import Any

FIT = "polyfit.fit"
SWEEP = "polyfit.sweep"
PING = "polyfit.ping"
TASKS = (FIT, SWEEP, PING)


def arguments(record_id: str) -> list[str]:
    """A message's positional arguments for the job or sweep ``record_id``."""
    return [record_id]


def record_id(task_id: str, args: Any, kwargs: Any, id_name: str) -> str:
    """The id a delivered message names: its first argument, else the keyword ``id_name``;
    the task id where neither is a non-empty string. Arguments after the id are ignored:
    messages sent before the record was the only copy carried the request there, and the
    record's request is the one run."""
    args = args if isinstance(args, list | tuple) else []
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    given = args[0] if args else kwargs.get(id_name)
    return given if isinstance(given, str) and given else task_id
