"""Giving memory back to the system between export stages.

A large tower's export (ViT-H: 2.5 GB of fp32 weights) frees gigabytes between stages:
the PyTorch model after tracing, each protobuf graph after it is written. CPython and
glibc keep much of it: freed blocks under glibc's mmap threshold (which grows to 32 MB
once large blocks have been freed, i.e. past most weight matrices) stay in the heap,
so the process's RSS holds every stage's peak on top of the next one. malloc_trim
hands the free pages back (MADV_DONTNEED on free chunks in every arena).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import cache


@cache
def _libc() -> ctypes.CDLL | None:
    # glibc only (Linux); elsewhere the allocator's behaviour is left as it is.
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    return libc


def release_memory() -> bool:
    """Collects garbage and returns the allocator's free pages to the system.

    Returns:
        True if glibc's malloc_trim ran (memory may have been released), False where it
        is not available (only gc.collect ran).
    """
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def rss_bytes() -> int | None:
    """This process's resident set size in bytes (Linux /proc), None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import os

    return resident_pages * os.sysconf("SC_PAGE_SIZE")
