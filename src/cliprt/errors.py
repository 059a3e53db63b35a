"""The one error hierarchy of cliprt: each says what was wrong, with what value, and what to do."""

from __future__ import annotations


class CliprtError(Exception):
    """Base of every error cliprt raises on purpose."""


class InputError(CliprtError, ValueError):
    """A user input (image, text, label, array, argument) cannot be used as given."""


class ModelFolderError(CliprtError):
    """A model folder is missing, incomplete, altered or unreadable."""


class FormatVersionError(ModelFolderError):
    """A model folder or index file was written by a newer cliprt than this one."""


class ExportError(CliprtError):
    """A checkpoint could not be exported."""


class ParityError(ExportError):
    """An exported variant disagrees with the PyTorch tower beyond its gate."""


class ProviderError(CliprtError):
    """The requested device or execution provider is not available here."""


class IndexFileError(CliprtError):
    """An index file is truncated, altered, or of an unknown format."""


class ModelClosedError(CliprtError, RuntimeError):
    """A ClipModel was used after close(); load the model again."""


class ModelMismatchError(CliprtError):
    """Embeddings of one model are used with another (e.g. an index searched by a model
    other than the one that built it)."""


class Overloaded(CliprtError):
    """A batching queue is full: the request was refused at once, not queued.

    Attributes:
        queued: items waiting in the refusing lane when the request came.
        max_queue: that lane's capacity (items).
        retry_after_s: a hint (seconds) for when to try again.
    """

    def __init__(self, message: str, *, queued: int, max_queue: int, retry_after_s: float) -> None:
        super().__init__(message)
        self.queued = queued
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s


class DeadlineExceeded(CliprtError, TimeoutError):
    """A request's deadline passed before its result was ready; it was dropped before
    being computed when that was still possible."""


class BatcherClosed(CliprtError):
    """A request came to a batcher that is closing or closed."""


class UnsupportedCheckpointError(ExportError):
    """A checkpoint of a family or architecture cliprt does not export."""
