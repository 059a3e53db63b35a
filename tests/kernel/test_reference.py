"""The kernel against a float64 reference: awkward sizes, every dtype, every ISA, 1 and
many threads, batch sizes 1/3/16/33, k in {1, 10, N, N+5}; plus a hypothesis fuzz."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cliprt.runtime.index import Index

from .reference import check_topk, stored_rows

SIZES = (1, 15, 16, 17, 31, 32, 33, 511, 512, 513)
# Every N and every D of SIZES appears, paired so small/large meet both ways; the full
# 10 x 10 product times dtypes and ISAs would take minutes on two cores.
SHAPES = [
    (1, 1),
    (1, 512),
    (15, 513),
    (16, 33),
    (17, 17),
    (31, 511),
    (32, 16),
    (33, 1),
    (33, 32),
    (511, 15),
    (512, 31),
    (513, 513),
]
DTYPES = ("fp32", "fp16", "int8")
BATCHES = (1, 3, 16, 33)


def make_index(n: int, d: int, dtype: str, seed: int = 0) -> tuple[Index, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    index = Index(d, dtype)
    index.add(x)
    index._min_rows_per_thread = 1  # split even tiny databases over the threads
    return index, rng.standard_normal((max(BATCHES), d), dtype=np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n", "d"), SHAPES)
def test_matches_reference(isa: str, dtype: str, n: int, d: int) -> None:
    index, queries = make_index(n, d, dtype, seed=n * 1000 + d)
    rows = stored_rows(index)
    for k in sorted({1, 10, n, n + 5}):
        full = {}
        for threads in (1, 4):
            index._threads = threads
            scores, ids = index.search(queries, k)
            check_topk(scores, ids, rows, queries, k)
            full[threads] = (scores, ids)
        # The thread count changes neither a score nor an id, bit for bit.
        np.testing.assert_array_equal(full[1][0], full[4][0])
        np.testing.assert_array_equal(full[1][1], full[4][1])
        # A query scores the same whichever batch it came in.
        for b in BATCHES:
            s, i = index.search(queries[b - 1 : 2 * b - 1], k)
            np.testing.assert_array_equal(s, full[1][0][b - 1 : 2 * b - 1])
            np.testing.assert_array_equal(i, full[1][1][b - 1 : 2 * b - 1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_and_threads_bit_exact_on_many_rows(isa: str, dtype: str) -> None:
    """Enough rows for several threads and several row blocks per thread."""
    n, d = 6000, 77
    index, queries = make_index(n, d, dtype, seed=7)
    index._threads = 1
    ref_s, ref_i = index.search(queries, 20)
    check_topk(ref_s, ref_i, stored_rows(index), queries, 20)
    for threads in (2, 3, 8):
        index._threads = threads
        for b in BATCHES:
            for start in (0, max(BATCHES) - b):
                s, i = index.search(queries[start : start + b], 20)
                np.testing.assert_array_equal(s, ref_s[start : start + b])
                np.testing.assert_array_equal(i, ref_i[start : start + b])


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    n=st.integers(0, 300),
    d=st.integers(1, 70),
    dtype=st.sampled_from(DTYPES),
    nq=st.integers(1, 12),
    extra_k=st.integers(-5, 5),
    threads=st.integers(1, 4),
    dup=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_fuzz(
    isa: str,
    n: int,
    d: int,
    dtype: str,
    nq: int,
    extra_k: int,
    threads: int,
    dup: bool,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    if dup and n > 1:
        # Repeated rows make exact ties across blocks and threads.
        x[rng.integers(0, n, n // 2)] = x[0]
    ids = rng.permutation(10 * n + 1)[:n].astype(np.int64)
    index = Index(d, dtype, threads=threads)
    index._min_rows_per_thread = 1
    index.add(x, ids=ids)
    queries = rng.standard_normal((nq, d), dtype=np.float32)
    k = max(1, n + extra_k) if extra_k < 0 else max(1, min(n, 10) + extra_k)
    scores, got = index.search(queries, k)
    check_topk(scores, got, stored_rows(index), queries, k, row_ids=ids)
