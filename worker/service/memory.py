"""Freed tensor memory stays in the process for the next step instead of going back to the OS.

glibc's malloc serves a block of 128 KiB or more with its own ``mmap`` and returns it to
the OS when freed (it raises that threshold only as it sees such blocks freed), and gives
back the top of its heap past 128 KiB free. A step that allocates a few MiB of temporaries
(a sweep's predictions and their gradient: 2 MiB each at K = 256 and 2000 points) can then
pay for fresh zeroed pages at every step, several times slower in some processes than in
others, depending on what had been freed first (docs/PERFORMANCE.md). Fixed thresholds end
that: blocks under 32 MiB come from the heap, which keeps up to 256 MiB free.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 256 * 2**20


def keep_freed_memory() -> bool:
    """Set glibc's thresholds for this process (and the processes it forks later); False
    where the C library is not glibc (nothing to do: other allocators cache on their own)."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
