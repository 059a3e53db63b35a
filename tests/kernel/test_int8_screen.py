"""The int8 screen ISAs (avx512vnni: vpdpbusd, neondot: sdot; an integer dot product with
int8-quantized queries bounds every score, then the exact score for the pairs that may
matter) return what their exact ISA (avx512, neon) returns, bit for bit: same ids, same
scores. Inputs are chosen to stress the screen's error bound: near
ties, queries whose quantization is poor, extreme and zero scales, long rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliprt import _topk

# (exact ISA, screening ISA): the first pair this CPU has.
_PAIRS = [("avx512", "avx512vnni"), ("neon", "neondot")]
_PAIR = next((p for p in _PAIRS if p[1] in _topk.available_isas()), None)
pytestmark = pytest.mark.skipif(
    _PAIR is None, reason="this CPU has neither AVX512_VNNI nor the ARM dot product"
)


def _both(rows: np.ndarray, q: np.ndarray, scales: np.ndarray, k: int, threads: int = 2) -> None:
    """Searches under the exact and the screening ISA and asserts equal results."""
    assert _PAIR is not None
    exact, screen = _PAIR
    before = _topk.current_isa()
    try:
        got = {}
        for isa in _PAIR:
            _topk.set_isa(isa)
            got[isa] = _topk.search(
                rows, q, k=k, scales=scales, threads=threads, min_rows_per_thread=1
            )
    finally:
        _topk.set_isa(before)
    np.testing.assert_array_equal(got[screen][1], got[exact][1])
    np.testing.assert_array_equal(got[screen][0], got[exact][0])


def _quantized(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = (np.abs(x).max(axis=1) / 127).astype(np.float32)
    safe = np.where(scale > 0, scale, 1).astype(np.float32)
    return np.clip(np.rint(x / safe[:, None]), -127, 127).astype(np.int8), scale


@pytest.mark.parametrize("nq", [1, 2, 3, 5, 6, 7, 24, 25, 64])
@pytest.mark.parametrize("d", [1, 3, 4, 63, 64, 65, 512, 700])
def test_screen_matches_exact_kernel(nq: int, d: int) -> None:
    rng = np.random.default_rng(nq * 1000 + d)
    rows, scales = _quantized(rng.standard_normal((1500, d), dtype=np.float32))
    q = rng.standard_normal((nq, d), dtype=np.float32)
    for k in (1, 10, 1500, 1503):
        _both(rows, q, scales, k)


def test_near_ties_and_duplicates() -> None:
    """Rows that differ by one unit in one element: scores a hair apart, and exact ties."""
    rng = np.random.default_rng(1)
    base = rng.integers(-127, 128, size=(1, 256)).astype(np.int8)
    rows = np.repeat(base, 3000, axis=0)
    idx = rng.integers(0, 256, 3000)
    rows[np.arange(3000), idx] = np.clip(rows[np.arange(3000), idx].astype(int) + 1, -127, 127)
    scales = np.full(3000, 0.01, np.float32)
    q = rng.standard_normal((9, 256), dtype=np.float32)
    _both(rows, q, scales, 25)


def test_poorly_quantized_queries() -> None:
    """One huge element per query: every other element quantizes to 0 or 1."""
    rng = np.random.default_rng(2)
    rows, scales = _quantized(rng.standard_normal((4000, 128), dtype=np.float32))
    q = rng.standard_normal((8, 128), dtype=np.float32) * 1e-3
    q[:, 5] = 50.0
    _both(rows, q, scales, 10)
    _both(rows, q[:1], scales, 10)


@pytest.mark.parametrize("scale", [0.0, 1e-30, 1e-20, 1e20, 1e30, -0.5])
def test_extreme_and_negative_scales(scale: float) -> None:
    rng = np.random.default_rng(3)
    rows, scales = _quantized(rng.standard_normal((2000, 96), dtype=np.float32))
    scales[::7] = scale
    q = rng.standard_normal((7, 96), dtype=np.float32)
    _both(rows, q, scales, 12)
    _both(rows, q[:2], scales, 12)


@pytest.mark.parametrize("magnitude", [0.0, 1e-30, 1e-12, 1e12, 1e30])
def test_extreme_query_magnitudes(magnitude: float) -> None:
    rng = np.random.default_rng(4)
    rows, scales = _quantized(rng.standard_normal((1000, 40), dtype=np.float32))
    q = (rng.standard_normal((6, 40)) * magnitude).astype(np.float32)
    _both(rows, q, scales, 10)
    _both(rows, q[:1], scales, 10)


def test_dim_beyond_the_int32_safe_limit_uses_the_exact_path() -> None:
    rng = np.random.default_rng(5)
    rows, scales = _quantized(rng.standard_normal((40, 65537), dtype=np.float32))
    _both(rows, rng.standard_normal((7, 65537), dtype=np.float32), scales, 5)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 400),
    d=st.integers(1, 150),
    nq=st.integers(1, 20),
    k=st.integers(1, 30),
    threads=st.integers(1, 4),
    clustered=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_fuzz_screen_equals_exact(
    n: int, d: int, nq: int, k: int, threads: int, clustered: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    if clustered and n:
        x = x[:1] + 0.01 * x  # every score close to every other
    rows, scales = _quantized(x)
    q = rng.standard_normal((nq, d), dtype=np.float32)
    if clustered and n:
        q[0] = x[0]
    _both(rows, q, scales, k, threads)
