"""The real compose stack, built and exercised by scripts/compose-check. Selected with
``pytest -m compose`` (it builds images: minutes); skipped with one line where no Docker
engine answers."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ROOT

pytestmark = pytest.mark.compose


def test_compose_stack_passes_its_check() -> None:
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker engine answers (`docker info` failed)")
    done = subprocess.run([str(ROOT / "scripts" / "compose-check")], capture_output=True,
                          text=True, timeout=1800, env=os.environ)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
