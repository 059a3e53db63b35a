"""A float64 reference for top-k by inner product, and the checks the kernel must pass
against it. Near-ties are handled by comparing scores, not ids: where reference scores
differ by less than the fp32 rounding bound, either order is correct."""

from __future__ import annotations

import numpy as np

from cliprt.runtime.index import Index


def stored_rows(index: Index) -> np.ndarray:
    """The rows as the kernel sees them, dequantized to float64 (int8: scale * q)."""
    n = len(index)
    rows = index._rows[:n].astype(np.float64)
    if index.dtype == "int8":
        rows *= index._scales[:n, None].astype(np.float64)
    return rows


def error_bound(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Per (query, row) bound on |fp32 score - exact score|: d * 2^-23 * sum |r_i q_i|
    (loose on purpose: each ISA has its own summation order)."""
    d = rows.shape[1]
    return np.abs(queries.astype(np.float64)) @ np.abs(rows).T * (d + 2) * 2.0**-23 + 1e-30


def check_topk(
    scores: np.ndarray,
    ids: np.ndarray,
    rows: np.ndarray,
    queries: np.ndarray,
    k: int,
    row_ids: np.ndarray | None = None,
) -> None:
    """Asserts (scores, ids) is an exact top-k of `rows` (float64) for `queries`.

    row_ids: the user id of each row (default: its position).
    """
    n = rows.shape[0]
    nq = queries.shape[0]
    row_ids = np.arange(n) if row_ids is None else np.asarray(row_ids)
    pos_of = {int(i): p for p, i in enumerate(row_ids)}
    ref = queries.astype(np.float64) @ rows.T  # (nq, n)
    tol = error_bound(rows, queries)
    kk = min(k, n)
    assert scores.shape == ids.shape == (nq, k)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    for q in range(nq):
        got = ids[q, :kk]
        assert (got >= 0).all(), (q, got)
        assert len(set(got.tolist())) == kk, "an id appears twice"
        pos = np.array([pos_of[int(i)] for i in got], dtype=np.int64)
        # Each returned score is the row's score, to fp32 rounding.
        np.testing.assert_array_less(np.abs(scores[q, :kk] - ref[q, pos]), tol[q, pos] * 1.01)
        # Sorted best first; equal scores put the lower id first.
        s = scores[q, :kk]
        assert (s[:-1] >= s[1:]).all(), s
        eq = s[:-1] == s[1:]
        assert (got[:-1][eq] < got[1:][eq]).all(), "tie not broken by lower id"
        # Nothing left out scores better than the k-th returned one (beyond rounding).
        if kk < n:
            rest = np.ones(n, dtype=bool)
            rest[pos] = False
            worst_in = ref[q, pos].min()
            best_out = ref[q, rest].max()
            slack = tol[q, pos].max() + tol[q, rest].max()
            assert best_out <= worst_in + slack, (q, best_out, worst_in)
        # The tail past n: FAISS's convention.
        assert (ids[q, kk:] == -1).all()
        assert np.isneginf(scores[q, kk:]).all()
