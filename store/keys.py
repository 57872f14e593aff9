"""Every Redis key and channel polyfit uses: the layout, described once.

- ``polyfit:job:<id>``: a job's hash — ``job_id``, ``state``, ``queue``, ``request`` (the
  FitRequest JSON), ``submitted_at``, ``attempts``, ``requeues``, ``sweep_id`` for a sweep's
  member; a claim adds ``token``, ``started_at``, ``worker``, ``device``; a fit adds
  ``progress``; its end adds ``finished_at`` and ``result`` or ``error`` (with
  ``partial_history``), and ``expires_at`` with the hash's TTL when one is set
  (``POLYFIT_RESULT_TTL``); a cancel request sets ``cancel`` to 1. ``approach`` is copied out
  of the request, for the index.
- ``polyfit:jobs``: a sorted set of job ids by submission time, for ``list``.
- ``polyfit:index:<state>:<approach>``: the same, one set per state and approach, for
  ``list --state/--approach`` and ``prune``. The scripts that change a job's state move it
  between these sets themselves (``lua/prelude.lua``; standalone Redis only, as Celery's
  Redis transport already is). An id stays in its sets after its hash expires, until a
  listing or the housekeeping (``JobStore.trim``) meets it.
- ``polyfit:running``: the ids of running jobs, which the reaper scans.
- ``polyfit:lease:<id>``: the running attempt's token, expiring unless its worker renews it.
- ``polyfit:events:<id>``: a pub/sub channel where each state change and progress write of a
  job (or the end of a sweep's batch) is announced, for ``wait`` to wake on.
- ``polyfit:sweep:<id>``: a sweep's hash — ``sweep_id``, ``queue``, ``request`` (the
  SweepRequest JSON), ``members`` (JSON list of member job ids, learning-rate major),
  ``submitted_at``, ``attempts``; its worker adds ``worker``, ``device``, ``started_at``,
  ``fit_seconds``, ``progress``. Its members are ordinary job hashes.

- ``polyfit:stats:*``: counters kept for metrics (``store/stats.py``): ``submitted`` and
  ``sweep_members`` (hashes by approach), ``finished`` (by ``<state>:<approach>``, counted
  by the state change itself), ``requeues`` and ``resent``, ``fit_seconds:<approach>:<device>``
  (a histogram's buckets, sum and count), and ``workers`` (each worker's last sign of life).

Celery's Redis transport (kombu) keeps its messages beside these: a list per queue (``cpu``,
``cuda``; ``<queue>\x06\x16<priority>`` for priorities), and the ``unacked`` hash of the
messages workers hold. polyfit reads them, never writes them, to find a queued job whose
message is gone (``JobStore.orphans``).
"""

PREFIX = "polyfit"
JOBS = f"{PREFIX}:jobs"
RUNNING = f"{PREFIX}:running"
INDEX = f"{PREFIX}:index"
STATS = f"{PREFIX}:stats"
BROKER_UNACKED = "unacked"
BROKER_PRIORITY_SEPARATOR, BROKER_PRIORITIES = "\x06\x16", (3, 6, 9)


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def index_key(state: str, approach: str) -> str:
    return f"{INDEX}:{state}:{approach}"


def broker_lists(queue: str) -> list[str]:
    """The lists that hold a queue's waiting messages, of every priority."""
    return [queue] + [f"{queue}{BROKER_PRIORITY_SEPARATOR}{p}" for p in BROKER_PRIORITIES]


def lease_key(job_id: str) -> str:
    return f"{PREFIX}:lease:{job_id}"


def events_channel(job_or_sweep_id: str) -> str:
    return f"{PREFIX}:events:{job_or_sweep_id}"


def sweep_key(sweep_id: str) -> str:
    return f"{PREFIX}:sweep:{sweep_id}"
