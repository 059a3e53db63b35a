"""The search contract beyond plain correctness: ties, k > N, NaN rows, strided rows,
int8/fp16 storage, errors that say how to fix the call, the GIL, ISA selection."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from cliprt import _topk
from cliprt.errors import InputError
from cliprt.runtime.index import Index, available_isas

from .reference import check_topk, stored_rows

DTYPES = ("fp32", "fp16", "int8")


@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_put_lower_id_first_across_threads(isa: str, dtype: str) -> None:
    n, d = 3000, 24
    x = np.tile(np.linspace(-1, 1, d, dtype=np.float32), (n, 1))
    index = Index(d, dtype, threads=4)
    index._min_rows_per_thread = 1
    # User ids in reverse order: the tie rule is on ids, not on row positions.
    index.add(x, ids=np.arange(n)[::-1] + 100)
    scores, ids = index.search(x[0], 7)
    assert (scores == scores[0, 0]).all()
    assert ids[0].tolist() == list(range(100, 107))


def test_k_beyond_n_fills_with_minus_one_and_neg_inf(isa: str) -> None:
    index = Index(4)
    index.add(np.eye(4, dtype=np.float32)[:3], ids=[7, 8, 9])
    scores, ids = index.search(np.array([[0.0, 1.0, 0.0, 0.0]], np.float32), 6)
    assert ids.tolist() == [[8, 7, 9, -1, -1, -1]]
    assert scores[0, :3].tolist() == [1.0, 0.0, 0.0]
    assert np.isneginf(scores[0, 3:]).all()


def test_empty_index_returns_only_misses() -> None:
    scores, ids = Index(3).search(np.ones(3, np.float32), 2)
    assert ids.tolist() == [[-1, -1]] and np.isneginf(scores).all()


def test_one_dimensional_query_is_a_batch_of_one() -> None:
    index = Index(3)
    index.add(np.eye(3, dtype=np.float32))
    scores, ids = index.search(np.array([0.0, 0.0, 2.0], np.float32), 1)
    assert scores.shape == ids.shape == (1, 1)
    assert ids[0, 0] == 2 and scores[0, 0] == 2.0


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_nan_rows_never_returned(isa: str, dtype: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 40), dtype=np.float32)
    x[::3, 5] = np.nan
    db = x.astype(dtype)
    q = rng.standard_normal((5, 40), dtype=np.float32)
    scores, ids = _topk.search(db, q, k=250, threads=3, min_rows_per_thread=1)
    finite = np.flatnonzero(~np.isnan(x).any(axis=1))
    assert finite.size == 200
    assert np.isin(ids[:, :200], finite).all()
    assert (ids[:, 200:] == -1).all() and np.isneginf(scores[:, 200:]).all()
    assert not np.isnan(scores).any()


def test_nan_int8_scale_rows_never_returned(isa: str) -> None:
    rows = np.ones((50, 8), np.int8)
    scales = np.ones(50, np.float32)
    scales[10:] = np.nan
    scores, ids = _topk.search(rows, np.ones((1, 8), np.float32), k=12, scales=scales)
    assert (scores[0, :10] == 8.0).all()
    assert sorted(ids[0, :10].tolist()) == list(range(10))
    assert (ids[0, 10:] == -1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8])
def test_strided_rows_are_read_in_place(isa: str, dtype: type) -> None:
    rng = np.random.default_rng(5)
    wide = (rng.standard_normal((700, 50)) * 40).astype(dtype)
    view = wide[:, 3:36]  # rows contiguous, row stride 50 elements
    assert not view.flags.c_contiguous
    scales = np.full(700, 0.01, np.float32) if dtype is np.int8 else None
    wq = rng.standard_normal((9, 40), dtype=np.float32)
    q = wq[:, 2:35]
    s1, i1 = _topk.search(view, q, k=13, threads=2, scales=scales)
    s2, i2 = _topk.search(
        np.ascontiguousarray(view), np.ascontiguousarray(q), k=13, threads=2, scales=scales
    )
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(i1, i2)


def test_index_add_accepts_strided_rows() -> None:
    wide = np.random.default_rng(1).standard_normal((40, 20), dtype=np.float32)
    index = Index(16)
    index.add(wide[:, 2:18])
    np.testing.assert_array_equal(index._rows[:40], wide[:, 2:18])


def test_int8_quantization_contract() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 33), dtype=np.float32)
    x[3] = 0.0  # an all-zero row: scale 0, every score 0
    index = Index(33, "int8")
    index.add(x)
    q8, scales = index._rows[:64], index._scales[:64]
    assert q8.dtype == np.int8 and np.abs(q8.astype(int)).max() == 127
    np.testing.assert_allclose(scales, np.abs(x).max(axis=1) / 127, rtol=1e-6)
    assert scales[3] == 0.0 and (q8[3] == 0).all()
    # Dequantized rows are within half a step of the input.
    assert (np.abs(q8 * scales[:, None] - x) <= scales[:, None] * 0.5 + 1e-7).all()
    scores, ids = index.search(x[:5], 64)
    check_topk(scores, ids, stored_rows(index), x[:5], 64)
    assert scores[0, ids[0].tolist().index(3)] == 0.0


def test_add_converts_in_chunks_without_seams() -> None:
    x = np.random.default_rng(4).standard_normal((70_000, 3), dtype=np.float32)
    index = Index(3, "int8")
    index.add(x, ids=np.arange(70_000) + 1)
    np.testing.assert_allclose(index._scales[:70_000], np.abs(x).max(axis=1) / 127, rtol=1e-6)
    assert index._ids[:70_000].tolist() == list(range(1, 70_001))
    bad = x.copy()
    bad[66_000, 1] = np.inf
    with pytest.raises(InputError, match="first in row 66000"):
        Index(3).add(bad)


def test_fp16_index_takes_float16_and_float32() -> None:
    x = np.random.default_rng(2).standard_normal((10, 8), dtype=np.float32)
    a, b = Index(8, "fp16"), Index(8, "fp16")
    a.add(x)
    b.add(x.astype(np.float16))
    np.testing.assert_array_equal(a._rows[:10], b._rows[:10])
    assert a._rows.dtype == np.float16


def test_fp16_index_refuses_values_beyond_half_range() -> None:
    x = np.ones((3, 4), np.float32)
    x[2, 1] = 1e5
    index = Index(4, "fp16")
    with pytest.raises(InputError, match=r"row 2 has values beyond the fp16 range"):
        index.add(x)
    assert len(index) == 0


def test_scores_accumulate_in_fp32_not_fp16() -> None:
    # 4096 products of 1.0: an fp16 accumulator would stall at 2048.
    index = Index(4096, "fp16")
    index.add(np.ones((1, 4096), np.float32))
    scores, _ = index.search(np.ones(4096, np.float32), 1)
    assert scores[0, 0] == 4096.0


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Index(0), "dim must be a positive integer"),
        (lambda: Index(8, "bf16"), "unknown index dtype 'bf16'"),
        (lambda: Index(8, threads=0), "threads must be a positive integer"),
    ],
)
def test_constructor_errors(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        call()


def _index() -> Index:
    index = Index(8)
    index.add(np.ones((4, 8), np.float32))
    return index


@pytest.mark.parametrize(
    ("vectors", "ids", "match"),
    [
        (np.ones((2, 8)), None, r"dtype float64.*astype\(np.float32\)"),
        (np.ones((2, 8), np.int8), None, "dtype int8"),
        (np.ones((2, 7), np.float32), None, "dim 7 but the index has dim 8"),
        (np.ones((2, 16), np.float32)[:, ::2], None, "not contiguous.*ascontiguousarray"),
        (np.ones((2, 2, 8), np.float32), None, "must be 2-D"),
        (np.full((2, 8), np.nan, np.float32), None, "NaN or inf"),
        (np.ones((2, 8), np.float32), [1], "one per vector"),
        (np.ones((2, 8), np.float32), [1, -3], "ids must be >= 0"),
        (np.ones((2, 8), np.float32), [1.5, 2.0], "ids must be integers"),
        ([[1.0] * 8], None, "must be a numpy array"),
    ],
)
def test_add_errors(vectors, ids, match: str) -> None:  # type: ignore[no-untyped-def]
    index = _index()
    with pytest.raises(InputError, match=match):
        index.add(vectors, ids)
    assert len(index) == 4  # a failed add changes nothing


@pytest.mark.parametrize(
    ("queries", "k", "match"),
    [
        (np.ones(8, np.float32), 0, "k must be >= 1, got 0"),
        (np.ones(8, np.float32), -2, "k must be >= 1, got -2"),
        (np.ones(8, np.float32), 1.5, "k must be a positive integer"),
        (np.ones(8, np.float32), True, "k must be a positive integer"),
        (np.ones(9, np.float32), 1, "dim 9 but the index has dim 8"),
        (np.ones((2, 16), np.float32)[:, ::2], 1, "not contiguous"),
        (np.ones(8, np.int32), 1, "must be floating point"),
        (np.array([np.nan] * 8, np.float32), 1, "NaN or inf"),
    ],
)
def test_search_errors(queries, k, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=match):
        _index().search(queries, k)


def test_input_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        _index().search(np.ones(8, np.float32), 0)


def test_binding_never_converts_the_database() -> None:
    q = np.ones((1, 4), np.float32)
    with pytest.raises(ValueError, match="dtype float64"):
        _topk.search(np.ones((3, 4)), q, k=1)
    with pytest.raises(ValueError, match="rows must be contiguous"):
        _topk.search(np.ones((3, 8), np.float32)[:, ::2], q, k=1)
    with pytest.raises(ValueError, match="scales are required"):
        _topk.search(np.ones((3, 4), np.int8), q, k=1)
    with pytest.raises(ValueError, match="k must be >= 0"):
        _topk.search(np.ones((3, 4), np.float32), q, k=-1)


def test_float64_queries_are_converted() -> None:
    scores, ids = _index().search(np.ones(8), 2)
    assert scores.tolist() == [[8.0, 8.0]] and ids.tolist() == [[0, 1]]


# -- GIL and ISA ----------------------------------------------------------------------


def test_search_releases_the_gil() -> None:
    rng = np.random.default_rng(0)
    db = rng.standard_normal((20000, 256), dtype=np.float32)
    q = rng.standard_normal((96, 256), dtype=np.float32)
    span: list[float] = []

    def search() -> None:
        t0 = time.perf_counter()
        for _ in range(3):
            _topk.search(db, q, k=5, threads=1)
        span.extend([t0, time.perf_counter()])

    worker = threading.Thread(target=search)
    ticks: list[float] = []
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    inside = sum(span[0] < t < span[1] for t in ticks)
    # With the GIL held this thread could not tick at all while the search ran.
    assert inside > 1000, (inside, span[1] - span[0])


def test_available_isas() -> None:
    isas = available_isas()
    assert isas[0] == "baseline"
    assert set(isas) <= {"baseline", "avx2", "avx512", "avx512vnni", "neon", "neondot"}
    assert _topk.current_isa() in isas


def test_set_isa_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"unknown ISA 'sse9'.*available on this CPU: baseline"):
        _topk.set_isa("sse9")


def _isa_in_subprocess(value: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CLIPRT_ISA=value)
    code = "from cliprt import _topk; print(_topk.current_isa())"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("name", available_isas())
def test_env_var_forces_isa(name: str) -> None:
    out = _isa_in_subprocess(name)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == name


def test_env_var_with_unknown_isa_fails_import() -> None:
    out = _isa_in_subprocess("bogus")
    assert out.returncode != 0
    assert "CLIPRT_ISA: unknown ISA 'bogus'" in out.stderr


def test_env_var_with_unsupported_isa_fails_import() -> None:
    missing = [i for i in ("avx2", "avx512", "avx512vnni") if i not in available_isas()]
    if not missing or sys.platform != "linux" or os.uname().machine != "x86_64":
        pytest.skip("this CPU supports every x86 ISA the kernel has")
    out = _isa_in_subprocess(missing[-1])
    assert "is not supported by this CPU" in out.stderr
