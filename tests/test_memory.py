"""Freed tensor memory stays in the process (worker/service/memory.py): a 4 MiB block comes
from the heap rather than a mapping of its own, and stays in the heap once freed."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest

LIBC = ctypes.CDLL(None)

# In a process of its own (mallopt changes the process for good): a 4 MiB block allocated
# and freed, with glibc's mallinfo2 read after each step.
PROBE = """
import ctypes, json, sys
from polyfit.worker.service.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "kept":
    keep_freed_memory()
before = libc.mallinfo2()
block = libc.malloc(4 * 2**20)
held = libc.mallinfo2()
libc.free(block)
after = libc.mallinfo2()
print(json.dumps({"mapped_blocks": held.hblks - before.hblks,
                  "heap_after_free": after.arena - before.arena}))
"""


def probe(mode: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(not hasattr(LIBC, "mallinfo2"), reason="glibc 2.33 or later only")
def test_a_freed_block_stays_in_the_heap():
    default, kept = probe("default"), probe("kept")
    assert default["mapped_blocks"] == 1  # glibc's default: a mapping of its own, unmapped
    assert kept["mapped_blocks"] == 0  # with the thresholds: from the heap ...
    assert kept["heap_after_free"] >= 4 * 2**20  # ... which keeps it once freed
