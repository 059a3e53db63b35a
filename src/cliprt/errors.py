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


class UnsupportedCheckpointError(ExportError):
    """A checkpoint of a family or architecture cliprt does not export."""
