"""Service configuration, read from ``POLYFIT_*`` environment variables."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RETENTION = 7 * 24 * 3600  # a week: the default of POLYFIT_RESULT_TTL


class Settings(BaseSettings):
    """Every knob of the service; the same names in compose files, the CLI and the worker."""

    model_config = SettingsConfigDict(env_prefix="POLYFIT_", extra="ignore")

    redis_url: str = "redis://localhost:6379/0"
    max_steps: int = Field(1_000_000, gt=0)
    max_points: int = Field(100_000, ge=2)
    max_degree: int = Field(10, ge=1)
    result_ttl: int = Field(RETENTION, ge=0, description="seconds a finished job or sweep is "
                            "kept (0: for ever)")
    soft_time_limit: float = Field(600.0, gt=0, description="seconds before a fit is stopped")
    hard_time_limit: float = Field(660.0, gt=0, description="seconds before its process is killed")
    visibility_timeout: int = Field(
        3600, gt=0, description="seconds before Redis re-delivers an unacknowledged message"
    )
    lease_seconds: float = Field(
        15.0, gt=0, description="a running job's lease, renewed by its worker"
    )
    orphan_seconds: float = Field(
        60.0, gt=0, description="a queued job whose message is gone (a purged queue, a lost "
        "message) is sent again within this many seconds")
    max_attempts: int = Field(
        3, ge=1, description="deliveries before a job whose worker dies fails"
    )
    auto_queue: Literal["cpu", "cuda"] = "cpu"
    progress_interval: float = Field(0.1, ge=0, description="least seconds between progress writes")
    compile: bool = Field(
        False, description="run fits that descend by SGD compiled (worker/engine/descent.py)"
    )
    warm_up: bool = Field(
        True, description="fit every approach briefly in each worker process before its first "
        "job, so that the first job runs as fast as the tenth (worker/engine/warm.py)")
    api_tokens: str | None = Field(
        None, description="bearer tokens the HTTP API accepts, comma-separated (polyfit-api)")
    api_tokens_file: str | None = Field(
        None, description="a file of more API tokens, one per line")
    api_rate_limit: int = Field(600, ge=1, description="API requests per token per minute")
    api_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="the largest API request body (inline data "
        "at POLYFIT_MAX_POINTS takes a few MB)")
    heartbeat_file: str | None = Field(
        None, description="a file the worker's main loop touches every few seconds, for a "
        "liveness probe (worker/service/heartbeat.py)")
    task_events: bool = Field(
        False, description="workers send Celery's task events, which Flower's task list is "
        "made of (a few more Redis messages a job: docs/PERFORMANCE.md)")
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="a port where polyfit-worker serves its own "
        "Prometheus metrics at /metrics (worker/service/metrics.py); unset: none")
    metrics_host: str = Field(
        "127.0.0.1", description="the address that port listens on (0.0.0.0 in a container)")

    @model_validator(mode="after")
    def _limits_in_order(self) -> Settings:
        """A fit stops itself (soft) before its process is killed (hard), and Redis re-delivers
        an unacknowledged message (visibility timeout) only after that: never mid-run."""
        if self.soft_time_limit >= self.hard_time_limit:
            raise ValueError(f"POLYFIT_SOFT_TIME_LIMIT ({self.soft_time_limit:g}) must be less "
                             f"than POLYFIT_HARD_TIME_LIMIT ({self.hard_time_limit:g})")
        if self.visibility_timeout <= self.hard_time_limit:
            raise ValueError(f"POLYFIT_VISIBILITY_TIMEOUT ({self.visibility_timeout}) must exceed "
                             f"POLYFIT_HARD_TIME_LIMIT ({self.hard_time_limit:g}), the longest a "
                             "job can run, or Redis hands a running job to a second worker")
        return self


@cache
def current_settings() -> Settings:
    """This process's settings, read from the environment once (validation runs per request)."""
    return Settings()


def celery_config(settings: Settings) -> dict:
    """The Celery settings the client and the worker must agree on: JSON only, one broker."""
    return {
        "broker_url": settings.redis_url,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "broker_transport_options": broker_transport_options(settings.visibility_timeout),
        "broker_connection_retry_on_startup": True,
        "task_default_queue": "cpu",
    }


def broker_transport_options(visibility_timeout: int) -> dict:
    """Redis broker options: a message unacknowledged for ``visibility_timeout`` seconds (its
    worker died) is delivered again; workers look for such messages at a quarter of that
    period, at most every 100 s (kombu's default), so a short timeout acts promptly too."""
    sweep = max(1, min(100, visibility_timeout // 4))
    interval = min(10, sweep)
    return {"visibility_timeout": visibility_timeout, "unacked_restore_interval": interval,
            "unacked_restore_throttle": max(1, sweep // interval)}
