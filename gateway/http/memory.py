"""glibc's malloc thresholds for the gateway process, so that large replies reuse memory.

An OpenAI usage page of 9,300 results is a ~6 MB body, built from a ~0.6 MB gRPC reply and copied
a few times on the way out (joined, wrapped in the page, sent). With glibc's defaults (a dynamic
mmap threshold, and the heap trimmed once 2x that lies free at its top) those blocks went back to
the kernel after every reply and the next reply touched them afresh. After the results gained
three fields (4.7 -> 5.8 MB a page), the first call of each new API key took ~4,300 minor page
faults and 32 ms of gateway CPU, against 65 faults and 15.5 ms with the thresholds below
(`python -m bench --only query`, 300k events, 2-core VM; the bench row "first call of each of 10
other API keys" p50 51-77 -> 35 ms), for ~17 MB more resident memory.

This is glibc's own `mallopt` (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) called through ctypes; there
is no library for it. The environment variables glibc reads itself (MALLOC_MMAP_THRESHOLD_,
MALLOC_TRIM_THRESHOLD_) win: when either is set, nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # the largest glibc takes on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 128 << 20


def keep_freed_memory() -> bool:
    """Set the thresholds; True when they were set (Linux with glibc, not overridden by the environment)."""
    if not sys.platform.startswith("linux") or {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt thresholds)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
