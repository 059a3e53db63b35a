"""The kernel's persistent thread pool: reused across calls, bounded, correct under many
concurrent Python callers, gone at interpreter exit, usable again after fork."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from cliprt import _topk

CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import numpy as np\nfrom cliprt import _topk\n" + textwrap.dedent(code),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _data(n: int = 4000, d: int = 40, nq: int = 9, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d), dtype=np.float32), rng.standard_normal(
        (nq, d), dtype=np.float32
    )


def test_pool_is_reused_and_bounded() -> None:
    db, q = _data()
    want = _topk.search(db, q, k=6, threads=1)
    for threads in (2, 4, 64, 5000):
        for _ in range(20):
            got = _topk.search(db, q, k=6, threads=threads, min_rows_per_thread=1)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
    # Workers are started once and kept: never more than one per CPU besides the caller.
    assert 0 <= _topk.pool_workers() <= CPUS - 1
    if CPUS > 1:
        assert _topk.pool_workers() >= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8])
def test_many_python_threads_search_at_once(dtype: type) -> None:
    """16 Python threads share the pool (the GIL is released): each gets, bit for bit,
    what it gets alone."""
    db, queries = _data(n=6000, d=48, nq=40, seed=3)
    rows = (db * 40).astype(dtype)
    scales = np.full(len(db), 0.01, np.float32) if dtype == np.int8 else None
    cases = [(queries[i : i + 1 + i % 7], 1 + i % 5, 1 + i % 4) for i in range(32)]
    want = [_topk.search(rows, q, k=k, threads=1, scales=scales) for q, k, _ in cases]
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for j in range(len(cases)):
                c = (j + offset) % len(cases)
                q, k, threads = cases[c]
                s, i = _topk.search(
                    rows, q, k=k, threads=threads, scales=scales, min_rows_per_thread=1
                )
                np.testing.assert_array_equal(s, want[c][0])
                np.testing.assert_array_equal(i, want[c][1])
        except BaseException as e:  # re-raised in the main thread below
            errors.append(e)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in pool), "a search never returned"
    if errors:
        raise errors[0]


def test_interpreter_exits_while_a_daemon_thread_searches() -> None:
    """atexit joins the pool while a daemon thread is still calling search: no hang."""
    out = _run(
        """
        import threading
        db = np.random.default_rng(0).standard_normal((50_000, 64), dtype=np.float32)
        q = np.ones((3, 64), np.float32)
        def spin():
            while True:
                _topk.search(db, q, k=3, threads=4, min_rows_per_thread=1)
        threading.Thread(target=spin, daemon=True).start()
        for _ in range(5):
            _topk.search(db, q, k=3, threads=4, min_rows_per_thread=1)
        print("leaving")
        """,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip() == "leaving", out.stderr


def test_search_after_shutdown_runs_on_the_caller() -> None:
    out = _run(
        """
        db = np.random.default_rng(0).standard_normal((5000, 32), dtype=np.float32)
        q = np.ones((2, 32), np.float32)
        want = _topk.search(db, q, k=4, threads=1)
        _topk.search(db, q, k=4, threads=4, min_rows_per_thread=1)
        _topk.shutdown_pool()
        assert _topk.pool_workers() == 0
        got = _topk.search(db, q, k=4, threads=4, min_rows_per_thread=1)
        assert (got[1] == want[1]).all() and (got[0] == want[0]).all()
        assert _topk.pool_workers() == 0
        print("ok")
        """
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_a_fresh_pool() -> None:
    """The child inherits no worker threads: its first search starts its own pool."""
    out = _run(
        """
        import os, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: on purpose
        db = np.random.default_rng(0).standard_normal((20_000, 32), dtype=np.float32)
        q = np.ones((3, 32), np.float32)
        want = _topk.search(db, q, k=5, threads=1)
        _topk.search(db, q, k=5, threads=4, min_rows_per_thread=1)  # parent pool started
        pid = os.fork()
        if pid == 0:
            ok = True
            for _ in range(10):
                s, i = _topk.search(db, q, k=5, threads=4, min_rows_per_thread=1)
                ok = ok and (s == want[0]).all() and (i == want[1]).all()
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        s, i = _topk.search(db, q, k=5, threads=4, min_rows_per_thread=1)
        assert (i == want[1]).all()
        print("ok")
        """,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
