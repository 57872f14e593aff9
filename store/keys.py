"""Every Redis key and channel polyfit uses: the layout, described once.

- ``polyfit:job:<id>``: a job's hash — ``job_id``, ``state``, ``queue``, ``request`` (the
  FitRequest JSON), ``submitted_at``, ``attempts``, ``requeues``, ``sweep_id`` for a sweep's
  member; a claim adds ``token``, ``started_at``, ``worker``, ``device``; a fit adds
  ``progress``; its end adds ``finished_at`` and ``result`` or ``error`` (with
  ``partial_history``); a cancel request sets ``cancel`` to 1.
- ``polyfit:jobs``: a sorted set of job ids by submission time, for ``list``.
- ``polyfit:running``: the ids of running jobs, which the reaper scans.
- ``polyfit:lease:<id>``: the running attempt's token, expiring unless its worker renews it.
- ``polyfit:events:<id>``: a pub/sub channel where each state change and progress write of a
  job (or the end of a sweep's batch) is announced, for ``wait`` to wake on.
- ``polyfit:sweep:<id>``: a sweep's hash — ``sweep_id``, ``queue``, ``request`` (the
  SweepRequest JSON), ``members`` (JSON list of member job ids, learning-rate major),
  ``submitted_at``, ``attempts``; its worker adds ``worker``, ``device``, ``started_at``,
  ``fit_seconds``, ``progress``. Its members are ordinary job hashes.
"""

PREFIX = "polyfit"
JOBS = f"{PREFIX}:jobs"
RUNNING = f"{PREFIX}:running"


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def lease_key(job_id: str) -> str:
    return f"{PREFIX}:lease:{job_id}"


def events_channel(job_or_sweep_id: str) -> str:
    return f"{PREFIX}:events:{job_or_sweep_id}"


def sweep_key(sweep_id: str) -> str:
    return f"{PREFIX}:sweep:{sweep_id}"
