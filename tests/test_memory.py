"""Freed tensor memory stays in the process (worker/service/memory.py)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

GLIBC = hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_glibc_takes_the_thresholds():
    # in a process of its own: mallopt changes the process for good
    code = "from polyfit.worker.service.memory import keep_freed_memory; print(keep_freed_memory())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "True"

