"""PolyfitClient: submit fit requests, follow them, and fetch their results by job id."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from polyfit.client.errors import (
    JobCancelled,
    JobFailed,
    JobNotFound,
    RedisUnavailable,
    SweepNotFound,
    WaitTimeout,
)
from polyfit.models import (
    FitRequest,
    FitResult,
    JobRecord,
    JobState,
    Settings,
    celery_config,
    messages,
)
from polyfit.models.sweep import SweepRecord, SweepRequest
from polyfit.store import NoSuchJob, NoSuchSweep, SweepStore
from polyfit.store.keys import events_channel


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:  # the credentials end at the last '@', as URL parsing has it
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"

# What the store publishes on a job's channel when the job ends: its final state.
FINISHED_EVENTS = {state.value for state in JobState if state.finished}


class PolyfitClient:
    """The Python API of polyfit; the ``polyfit-client`` CLI is a thin layer on it. Threads may
    share one for everything but waiting: a wait reads this client's one Redis subscription,
    so threads that wait at the same time need a client each."""

    def __init__(self, redis_url: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.redis_url = redis_url or self.settings.redis_url
        self.store = SweepStore.from_url(self.redis_url, self.settings)  # jobs and sweeps
        self._events: redis.client.PubSub | None = None  # job and sweep events, for waits
        self.celery = Celery("polyfit-client", set_as_current=False)
        self.celery.conf.update(celery_config(self.settings), broker_url=self.redis_url,
                                broker_connection_retry_on_startup=False,
                                broker_connection_max_retries=1)

    @contextmanager
    def _reaching_redis(self) -> Iterator[None]:
        """Turn Redis connection errors into one clear RedisUnavailable."""
        url = redacted(self.redis_url)
        try:
            yield
        except redis.exceptions.NoPermissionError as error:
            raise RedisUnavailable(f"Redis at {url} refused polyfit's user ({error}) — grant "
                                   "it the ACL in docs/SECURITY.md") from error
        except redis.AuthenticationError as error:
            raise RedisUnavailable(f"Redis at {url} refused the credentials ({error}) — check "
                                   "the password in POLYFIT_REDIS_URL") from error
        except (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError) as error:
            raise RedisUnavailable(f"Redis at {url} refused a write ({error}) — it is full "
                                   "(maxmemory) or read-only; free space or fix the server"
                                   ) from error
        except redis.ResponseError as error:
            raise RedisUnavailable(f"Redis at {url} refused a command ({error}) — check the "
                                   "database number in POLYFIT_REDIS_URL") from error
        except redis.exceptions.InvalidResponse as error:
            raise RedisUnavailable(f"the server at {url} does not answer as Redis does ({error})"
                                   " — check the host and port in POLYFIT_REDIS_URL") from error
        except (redis.ConnectionError, redis.TimeoutError, OperationalError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            if "no permissions" in reason:  # kombu's wrapping of a NoPermissionError
                raise RedisUnavailable(f"Redis at {url} refused polyfit's user ({reason}) — "
                                       "grant it the ACL in docs/SECURITY.md") from error
            if "CERTIFICATE_VERIFY_FAILED" in reason:
                raise RedisUnavailable(
                    f"Redis at {url} is unreachable ({reason}) — name the CA that signed its "
                    "certificate: ?ssl_ca_certs=PATH in POLYFIT_REDIS_URL") from error
            raise RedisUnavailable(
                f"Redis at {url} is unreachable ({reason}) — start it with "
                "`docker compose up -d` or `polyfit-local up`, or set POLYFIT_REDIS_URL"
            ) from error

    def submit(self, request: FitRequest, sweep_id: str | None = None) -> str:
        """Queue a validated request; returns the job id."""
        with self._reaching_redis():
            job_id = self.store.create(request, sweep_id=sweep_id)
            self._send(messages.FIT, job_id, request.queue,
                       lambda job_id: self.store.delete([job_id]))
        return job_id

    def _send(self, task: str, task_id: str, queue: str, undo: Callable[[str], object]) -> None:
        """Send the message for a recorded job or sweep (its id, the task id, is all it
        carries: polyfit.models.messages); should that fail, ``undo`` the record so that
        nothing waits for a message never sent."""
        try:
            self.celery.send_task(task, args=messages.arguments(task_id), queue=queue,
                                  task_id=task_id)
        except Exception:
            undo(task_id)
            raise

    def status(self, job_id: str) -> JobRecord:
        """The job's record as it is now."""
        try:
            with self._reaching_redis():
                return self.store.get(job_id)
        except NoSuchJob:
            raise self._not_found(job_id) from None

    def wait(self, job_id: str, timeout: float | None = None,
             on_update: Callable[[JobRecord], None] | None = None) -> JobRecord:
        """Block until the job finishes; returns its record, raises if it did not succeed."""
        record: JobRecord | None = None

        def finished() -> bool:
            nonlocal record
            record = self.status(job_id)
            if on_update:
                on_update(record)
            return record.state.finished

        self._follow(events_channel(job_id), finished, timeout,
                     lambda: f"job {job_id} still {record.state} after {timeout:g} s; "
                             f"wait again with `polyfit-client wait {job_id}`",
                     None if on_update else FINISHED_EVENTS)
        return self._finished(record)

    def _follow(self, channel: str, finished: Callable[[], bool], timeout: float | None,
                timed_out: Callable[[], str], wakes: set[str] | None = None) -> None:
        """Ask ``finished`` now, after each event on ``channel`` (only those in ``wakes``,
        when given) and at least once a second, until it says yes; past ``timeout`` seconds
        raise WaitTimeout(``timed_out()``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        events, resubscribed = self._subscribe(channel), False
        try:
            while not finished():
                while True:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise WaitTimeout(timed_out())
                    with self._reaching_redis():
                        try:
                            event = self._next_event(events, min(1.0, left or 1.0))
                        except redis.ConnectionError:  # Redis restarted since: subscribe again
                            if resubscribed:
                                raise
                            self._drop_events()
                            events, resubscribed = self._subscribe(channel), True
                            break
                    # a second without an event, or one that may change the answer (maybe an
                    # earlier wait's: that only costs a re-read)
                    if event is None or wakes is None or event in wakes:
                        break
        finally:
            try:
                events.unsubscribe(channel)
            except redis.RedisError:
                self._drop_events()

    @staticmethod
    def _next_event(events: redis.client.PubSub, timeout: float) -> str | None:
        """The next event's text, or None after ``timeout`` seconds without one (the
        confirmations of subscribing and unsubscribing are not events)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = events.get_message(timeout=left)
            if message is not None:
                return message["data"]
        return None

    def _subscribe(self, channel: str) -> redis.client.PubSub:
        """This client's subscription, kept between waits (closing one disconnects it), now
        to ``channel`` too."""
        with self._reaching_redis():
            if self._events is None:
                self._events = self.store.redis.pubsub(ignore_subscribe_messages=True)
            self._events.subscribe(channel)
        return self._events

    def _drop_events(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None

    def _finished(self, record: JobRecord) -> JobRecord:
        if record.state == JobState.SUCCEEDED:
            return record
        if not record.state.finished:
            raise JobFailed(f"job {record.job_id} has not finished ({record.state.value}); "
                            f"wait for it with `polyfit-client wait {record.job_id}`")
        message = record.error.message if record.error else record.state.value
        if record.state == JobState.CANCELLED:
            raise JobCancelled(f"job {record.job_id} was cancelled: {message}")
        kind = record.error.type if record.error else "Error"
        raise JobFailed(f"job {record.job_id} failed: {kind}: {message}")

    def result(self, job_id: str) -> FitResult:
        """The result of a finished job; raises if it failed or has not finished."""
        record = self._finished(self.status(job_id))
        return record.result

    def list(self, state: str | None = None, approach: str | None = None,
             limit: int = 20) -> list[JobRecord]:
        """Jobs newest first, optionally only those in ``state`` or of ``approach``."""
        with self._reaching_redis():
            return self.store.list(limit, {state} if state else None, approach)

    def cancel(self, job_id: str) -> str:
        """Cancel a job: 'cancelled' if it was queued, 'requested' if running, else
        'already <state>'."""
        try:
            with self._reaching_redis():
                return self.store.cancel(job_id)
        except NoSuchJob:
            raise self._not_found(job_id) from None

    def delete(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Delete jobs, whatever their state; a running one stops at its worker's next lease
        renewal. Returns the state each had, 'missing' for an unknown id."""
        with self._reaching_redis():
            return dict(zip(job_ids, self.store.delete(job_ids), strict=True))

    def prune(self, older_than: float, state: str | None = None) -> int:
        """Delete the finished jobs (only ``state``'s, when given) submitted more than
        ``older_than`` seconds ago; returns how many."""
        with self._reaching_redis():
            return self.store.prune(older_than, {state} if state else None)

    def _not_found(self, job_id: str) -> JobNotFound:
        """No job has this id; when a sweep has, the error says so and where to look."""
        with self._reaching_redis():
            if self.store.is_sweep(job_id):
                return JobNotFound(f"{job_id} is a sweep, not a job",
                                   hint=f"`polyfit-client sweep-result {job_id}` shows it")
        return JobNotFound(f"job {job_id} not found")

    # --- sweeps: many learning rates × seeds as one batched job ---

    def sweep(self, sweep: SweepRequest) -> str:
        """Queue a sweep (one job that fits all its members together); returns the sweep id.
        Each member also gets a job id of its own, listed by ``sweep_result``."""
        with self._reaching_redis():
            sweep_id, _ = self.store.create_sweep(sweep)
            self._send(messages.SWEEP, sweep_id, sweep.queue, self.store.delete_sweep)
        return sweep_id

    def sweep_result(self, sweep_id: str) -> SweepRecord:
        """The sweep as it is now: its state and its members, best final loss first."""
        try:
            with self._reaching_redis():
                return self.store.get_sweep(sweep_id)
        except NoSuchSweep:
            raise SweepNotFound(f"sweep {sweep_id} not found") from None

    def wait_sweep(self, sweep_id: str, timeout: float | None = None,
                   on_update: Callable[[dict[str, int], dict | None], None] | None = None
                   ) -> SweepRecord:
        """Block until every member finished; returns the sweep. ``on_update`` gets the
        member counts by state and the batch's progress, about once a second."""
        try:
            with self._reaching_redis():
                member_ids = self.store.member_ids(sweep_id)
        except NoSuchSweep:
            raise SweepNotFound(f"sweep {sweep_id} not found") from None

        def finished() -> bool:
            with self._reaching_redis():
                states = self.store.member_states(member_ids)
                progress = self.store.progress_of(sweep_id) if on_update else None
            if on_update:
                on_update({s.value: states.count(s) for s in JobState}, progress)
            return all(s.finished for s in states)

        self._follow(events_channel(sweep_id), finished, timeout,
                     lambda: f"sweep {sweep_id} not finished after {timeout:g} s; wait again "
                             f"with `polyfit-client sweep-result --wait {sweep_id}`",
                     None if on_update else {"finished"})
        return self.sweep_result(sweep_id)

    def delete_sweep(self, sweep_id: str) -> int:
        """Delete a sweep and its members (running ones stop); returns how many members
        were still held."""
        try:
            with self._reaching_redis():
                return self.store.delete_sweep(sweep_id)
        except NoSuchSweep:
            raise SweepNotFound(f"sweep {sweep_id} not found") from None

    def cancel_sweep(self, sweep_id: str) -> dict[str, int]:
        """Cancel every member of a sweep; returns how many got each outcome."""
        try:
            with self._reaching_redis():
                return self.store.cancel_sweep(sweep_id)
        except NoSuchSweep:
            raise SweepNotFound(f"sweep {sweep_id} not found") from None
