"""Liveness without Python in the probe: the worker's main process touches a file from its
consumer's event loop every ``INTERVAL`` seconds (``POLYFIT_HEARTBEAT_FILE``). A probe that
finds the file fresh knows the loop that takes messages runs; it needs only ``stat`` and
``date`` (the compose files' healthchecks), where ``celery inspect ping`` imported the task
modules, and torch with them, at every probe. Each beat also sets the worker's
``polyfit_worker_heartbeat_timestamp_seconds`` (metrics.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from celery import bootsteps

from polyfit.models.settings import current_settings
from polyfit.worker.service import metrics

log = logging.getLogger("polyfit.worker")

INTERVAL = 5.0  # seconds; the compose healthchecks call a file older than 30 s stale


class Heartbeat(bootsteps.StartStopStep):
    """A consumer step: it starts once the consumer is connected and stops with it (while
    Redis is away, the file goes stale, as pings went unanswered)."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        path = current_settings().heartbeat_file
        self.path = Path(path) if path else None
        self.timer_entry: Any = None

    def start(self, parent: Any) -> None:
        self.beat()
        self.timer_entry = parent.timer.call_repeatedly(INTERVAL, self.beat)

    def stop(self, parent: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def beat(self) -> None:
        metrics.HEARTBEAT.set_to_current_time()
        if self.path is None:
            return
        try:
            self.path.touch()
        except OSError as error:  # the probe will say so; the worker goes on
            log.warning("heartbeat: cannot touch %s: %s", self.path, error)

