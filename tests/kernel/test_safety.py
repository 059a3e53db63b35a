"""Inputs that once killed or flooded the process: zero queries, empty databases, k == 0,
absurd thread counts, result sizes that overflow. Each case runs in a subprocess, so a
crash (SIGFPE, SIGSEGV) fails its test instead of killing pytest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cliprt import _topk

DTYPES = ("fp32", "fp16", "int8")


def _run(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter; returns its result (a signal: returncode < 0)."""
    prelude = (
        "import numpy as np\nfrom cliprt import _topk\nfrom cliprt.runtime.index import Index\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _database(dtype: str, n: int, d: int) -> tuple[np.ndarray, np.ndarray | None]:
    rows = np.ones((n, d), np.float32)
    if dtype == "fp16":
        return rows.astype(np.float16), None
    if dtype == "int8":
        return rows.astype(np.int8), np.ones(n, np.float32)
    return rows, None


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_queries_and_empty_databases_in_a_subprocess(dtype: str) -> None:
    out = _run(
        f"""
        rows = {{"fp32": np.float32, "fp16": np.float16, "int8": np.int8}}["{dtype}"]
        for n in (0, 1, 5000):
            db = np.ones((n, 24), rows)
            scales = np.ones(n, np.float32) if "{dtype}" == "int8" else None
            for nq in (0, 1, 3):
                for k in (0, 1, 7):
                    for threads in (0, 1, 3):
                        s, i = _topk.search(db, np.ones((nq, 24), np.float32), k=k,
                                            threads=threads, scales=scales,
                                            min_rows_per_thread=1)
                        assert s.shape == i.shape == (nq, k), (s.shape, n, nq, k)
        index = Index(24, "{dtype}")
        for nq in (0, 2):
            s, i = index.search(np.ones((nq, 24), np.float32), 3)
            assert s.shape == (nq, 3) and (i == -1).all()
        index.add(np.ones((10, 24), np.float32))
        s, i = index.search(np.ones((0, 24), np.float32), 3)
        assert s.shape == i.shape == (0, 3)
        print("ok")
        """
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", (out.returncode, out.stderr)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_results_in_process(dtype: str) -> None:
    """The same shapes in-process, with their values: misses are -inf / -1."""
    db, scales = _database(dtype, 0, 8)
    s, i = _topk.search(db, np.ones((2, 8), np.float32), k=3, scales=scales)
    assert np.isneginf(s).all() and (i == -1).all() and s.shape == (2, 3)
    db, scales = _database(dtype, 9, 8)
    s, i = _topk.search(db, np.ones((0, 8), np.float32), k=3, scales=scales)
    assert s.shape == i.shape == (0, 3)
    s, i = _topk.search(db, np.ones((2, 8), np.float32), k=0, scales=scales)
    assert s.shape == i.shape == (2, 0)


def test_negative_k_and_overflowing_result_sizes_are_value_errors() -> None:
    db = np.ones((4, 8), np.float32)
    q = np.ones((3, 8), np.float32)
    with pytest.raises(ValueError, match="k must be >= 0"):
        _topk.search(db, q, k=-1)
    with pytest.raises(ValueError, match="too many; ask for a smaller k"):
        _topk.search(db, q, k=2**62)


@pytest.mark.parametrize("threads", [5000, 10**6, 2**31, 2**63 - 1, -(2**63)])
def test_absurd_thread_counts_are_clamped(threads: int) -> None:
    """Any int64 thread count is accepted and clamped; results equal one thread's."""
    rng = np.random.default_rng(0)
    db = rng.standard_normal((3000, 32), dtype=np.float32)
    q = rng.standard_normal((5, 32), dtype=np.float32)
    want = _topk.search(db, q, k=4, threads=1)
    got = _topk.search(db, q, k=4, threads=threads, min_rows_per_thread=1)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    _topk.stream_read(db, threads=threads)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_threads_5000_never_runs_more_threads_than_cpus() -> None:
    """Counts the process's OS threads while searches asking for 5000 threads run."""
    out = _run(
        """
        import os, threading
        cpus = len(os.sched_getaffinity(0))
        db = np.random.default_rng(0).standard_normal((200_000, 64), dtype=np.float32)
        q = np.ones((4, 64), np.float32)
        index = Index(64)  # every CPU; Index's own bounds on `threads` are its own tests'
        index.add(db)
        index._threads = 5000
        before = len(os.listdir("/proc/self/task"))
        peak = [0]
        done = threading.Event()
        def watch():
            while not done.is_set():
                peak[0] = max(peak[0], len(os.listdir("/proc/self/task")))
        w = threading.Thread(target=watch)
        w.start()
        for _ in range(5):
            _topk.search(db, q, k=3, threads=5000, min_rows_per_thread=1)
            index.search(q, 3)
        done.set()
        w.join()
        # The watcher adds one; the kernel may add at most cpus - 1 (the caller is one).
        extra = peak[0] - before - 1
        assert extra <= cpus - 1, (extra, cpus)
        print("ok", extra, cpus)
        """,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.startswith("ok"), (out.returncode, out.stderr)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(("rows", "width", "step"), [(100, 37, 1), (64, 256, 1), (50, 40, 3)])
def test_stream_read_reads_every_byte(threads: int, rows: int, width: int, step: int) -> None:
    """Flipping any one byte of the rows (never of the gaps of a strided view) changes the
    fold: every byte is read. Odd widths cover the 16-byte and 128-byte tails."""
    rng = np.random.default_rng(rows * width)
    full = rng.integers(0, 256, size=(rows * step, width), dtype=np.uint8)
    view = full[::step]
    base = _topk.stream_read(view, threads=threads)
    for r, c in zip(rng.integers(0, rows, 40), rng.integers(0, width, 40), strict=True):
        view[r, c] ^= 0x5A
        assert _topk.stream_read(view, threads=threads) != base, (r, c)
        view[r, c] ^= 0x5A
    if step > 1:
        full[1::step] ^= 0xFF  # the gaps between strided rows are not read
        assert _topk.stream_read(view, threads=threads) == base
