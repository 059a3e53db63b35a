"""Per-item failures of a batch job: what `encode_images(..., errors="skip")` returns.

A bad item (corrupt, truncated, empty, too large, unreadable) costs only itself: the
caller gets the good embeddings, the input positions they belong to, and one
:class:`ImageFailure` per item that could not be embedded.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cliprt.errors import InputError

ERRORS_MODES = ("raise", "skip")


def check_errors_mode(errors: str) -> str:
    """Returns `errors` if it is "raise" or "skip".

    Raises:
        InputError: any other value.
    """
    if errors not in ERRORS_MODES:
        raise InputError(
            f"errors must be 'raise' (the first bad image raises) or 'skip' (bad images are "
            f"reported, the rest embedded), got {errors!r}"
        )
    return errors


@dataclass(frozen=True)
class ImageFailure:
    """One input that could not be embedded.

    Attributes:
        index: its position in the caller's list (or in the job's stream of files).
        path: its path when it was given as one, else None (bytes, arrays, PIL images).
        error: the exception's class name, e.g. "InputError".
        message: what was wrong, as the exception says it.
    """

    index: int
    path: str | None
    error: str
    message: str

    @classmethod
    def from_exception(cls, index: int, item: Any, exc: BaseException) -> ImageFailure:
        """The failure of `item` (at `index`) that raised `exc`."""
        path = os.fspath(item) if isinstance(item, (str, os.PathLike)) else None
        return cls(index=index, path=path, error=type(exc).__name__, message=str(exc))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the failures report's line)."""
        return asdict(self)


@dataclass(frozen=True)
class EncodeResult:
    """The outcome of ``encode_images(..., errors="skip")``.

    Attributes:
        embeddings: float32 (m, D), L2-normalised, for the m items that succeeded, in
            input order.
        indices: int64 (m,): ``embeddings[j]`` is the embedding of input ``indices[j]``.
        failures: one entry per input that could not be embedded, in input order.
    """

    embeddings: np.ndarray
    indices: np.ndarray
    failures: list[ImageFailure]

    @property
    def ok(self) -> bool:
        """True when every input was embedded."""
        return not self.failures

    def __len__(self) -> int:
        return int(self.indices.shape[0])
