"""The Redis store of jobs and sweeps: the records, and the atomic state changes the client,
the worker and the reaper share. The layout is in ``keys.py``."""

from polyfit.store.jobs import JobStore, NoSuchJob, attempt_token
from polyfit.store.sweeps import NoSuchSweep, SweepStore

__all__ = ["JobStore", "NoSuchJob", "NoSuchSweep", "SweepStore", "attempt_token"]
