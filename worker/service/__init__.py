"""The Celery side of the worker: the app and its reaper, the ``polyfit.fit``,
``polyfit.sweep`` and ``polyfit.ping`` tasks, leases, the refusal of bad messages, process
memory settings, and the ``polyfit-worker`` command."""
