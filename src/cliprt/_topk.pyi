"""Types of the private C++ extension. Use cliprt.runtime.Index, not this module."""

import numpy as np
import numpy.typing as npt

__version__: str

def search(
    database: npt.NDArray[np.float32]
    | npt.NDArray[np.float16]
    | npt.NDArray[np.uint16]
    | npt.NDArray[np.int8],
    queries: npt.NDArray[np.float32],
    *,
    k: int,
    threads: int = 0,
    scales: npt.NDArray[np.float32] | None = None,
    ids: npt.NDArray[np.int64] | None = None,
    min_rows_per_thread: int = 0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Exact top-k by inner product; (scores (nq, k), ids (nq, k)), missing hits -inf / -1.

    nq, n and k may be 0; any int64 `threads` is clamped (<= 256 parts, <= usable CPUs).
    """

def available_isas() -> list[str]:
    """SIMD instruction sets this CPU can run, worst first."""

def current_isa() -> str:
    """The instruction set searches use now."""

def set_isa(name: str) -> None:
    """Forces an instruction set; ValueError if unknown or unsupported here."""

def stream_read(database: npt.NDArray[np.generic], *, threads: int = 0) -> int:
    """Reads every byte of a 2-D array once (a memory-read floor); an XOR fold of them."""

def pool_workers() -> int:
    """Worker threads the kernel's persistent pool has started (asleep between calls)."""

def shutdown_pool() -> None:
    """Joins the pool's workers (registered with atexit); later searches run inline."""
