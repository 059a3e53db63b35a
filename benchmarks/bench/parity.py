"""Agreement of two sets of embeddings of the same inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cliprt.runtime.vectors import l2_normalize


@dataclass(frozen=True)
class Agreement:
    """How close two sets of embeddings of the same n inputs are.

    Attributes:
        n, dim: rows and embedding width compared.
        min_cosine, mean_cosine: over the rows' cosine similarities.
        max_abs_diff: the largest element-wise difference of the unit vectors.
        cosines: every row's cosine, in input order.
    """

    n: int
    dim: int
    min_cosine: float
    mean_cosine: float
    max_abs_diff: float
    cosines: list[float]


def compare(engine: np.ndarray, reference: np.ndarray) -> Agreement:
    """Min/mean cosine and max abs diff of the L2-normalised rows of two (n, D) arrays.

    Both sides are re-normalised in float64 so that the figures measure the embeddings,
    not the last rounding of either normalisation.
    """
    if engine.shape != reference.shape:
        raise ValueError(f"shapes differ: engine {engine.shape}, reference {reference.shape}")
    a, b = l2_normalize(engine, dtype=np.float64), l2_normalize(reference, dtype=np.float64)
    cos = np.sum(a * b, axis=-1)
    return Agreement(
        n=int(a.shape[0]),
        dim=int(a.shape[1]),
        min_cosine=float(cos.min()),
        mean_cosine=float(cos.mean()),
        max_abs_diff=float(np.abs(a - b).max()),
        cosines=[float(c) for c in cos],
    )
