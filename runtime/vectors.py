"""The one L2 normalisation of embeddings, shared by the runtime, the exporter's
validation and the bench."""

from __future__ import annotations

from typing import Any

import numpy as np


def l2_normalize(x: Any, *, dtype: Any = np.float32) -> np.ndarray:
    """Rows of `x` scaled to unit L2 norm, computed in `dtype` (float32 for embeddings;
    the exporter's parity checks use float64). A zero row stays zero (norms are floored
    at 1e-12) rather than becoming NaN.

    The towers are exported without normalisation (CLIPModel.forward normalises), so the
    runtime normalises; doing it again is harmless should a future export do it in-graph.
    """
    x = np.asarray(x, dtype=dtype)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, np.asarray(1e-12, dtype=dtype))
