"""Types of the private C++ extension. Use cliprt.Index, not this module."""

import numpy as np
import numpy.typing as npt

__version__: str

def topk_fp32(
    database: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    *,
    k: int,
    threads: int = 0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
