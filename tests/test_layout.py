"""The package's shape: one ``polyfit`` namespace, and a fitting engine that needs neither
Celery nor Redis."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)


def test_the_folders_install_as_polyfit_and_nothing_else(tmp_path: Path) -> None:
    """Run from a folder other than the repository's, as in a user's notebook."""
    done = python("from polyfit.models import FitRequest; from polyfit.client import "
                  "PolyfitClient; from polyfit.store import JobStore; import polyfit.worker",
                  tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("models", "store", "worker", "client", "api"):
        done = python(f"import {name}", tmp_path)
        assert done.returncode != 0 and "No module named" in done.stderr, name


def test_the_engine_fits_without_celery_or_redis(tmp_path: Path) -> None:
    code = """
import sys
from polyfit.models import APPROACHES, FitRequest
from polyfit.models.sweep import SweepRequest
from polyfit.worker.engine.batched.report import BatchReport
from polyfit.worker.engine.fit import Report
from polyfit.worker.engine.run import run_fit
from polyfit.worker.engine.sweep import run_sweep
for approach in APPROACHES:
    steps = {} if approach == "exact" else {"steps": 3}
    request = FitRequest(approach=approach, seed=1, device="cpu", **steps)
    run_fit(request, Report(1, 3), "cpu")
base = FitRequest(approach="nn", steps=3, device="cpu")
members = SweepRequest(base=base, seeds=[1, 2]).members()
run_sweep(members, BatchReport(2, 1, 3), "cpu")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("celery", "kombu", "redis"))
assert not loaded, loaded
"""
    done = python(code, tmp_path)
    assert done.returncode == 0, done.stderr


def test_usage_lists_every_exit_status() -> None:
    from polyfit.client.status import ExitStatus

    usage = (Path(__file__).resolve().parent.parent / "docs" / "USAGE.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d+) \| ", usage, re.M)}
    assert documented == {int(status) for status in ExitStatus}
