"""Giving freed heap memory back to the OS after a session is created.

Creating an onnxruntime session parses the whole .onnx file (protobuf) and copies its
weights into tensors, then frees the parsed model. glibc keeps much of that freed memory
in the process heap (its mmap threshold grows after the first large frees, so later
large buffers land on the heap), where it counts in RSS: for ViT-B/32 int8 about 80 MiB
after the vision session, and the next session's load transient stacks on top of it.
malloc_trim(0) returns free heap pages to the OS. Elsewhere (musl, macOS, Windows)
this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Any


@functools.cache
def _malloc_trim() -> Any:  # a ctypes function, or None
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None


def release_free_heap() -> bool:
    """Returns freed heap memory to the OS (glibc's malloc_trim(0)); True when it ran."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
