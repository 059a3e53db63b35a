"""cliprt: a CLIP inference engine. Export a checkpoint once, then embed, classify and
search with onnxruntime, without PyTorch.

    import cliprt
    model = cliprt.load("clip-onnx/")
    probs = model.classify(["cat.jpg"], ["a photo of a cat", "a photo of a dog"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cliprt.errors import (
    BatcherClosed,
    CliprtError,
    DeadlineExceeded,
    ExportError,
    FormatVersionError,
    IndexFileError,
    InputError,
    ModelClosedError,
    ModelFolderError,
    ModelMismatchError,
    Overloaded,
    ParityError,
    ProviderError,
)

__all__ = [
    "Batcher",
    "BatcherClosed",
    "CliprtError",
    "DeadlineExceeded",
    "ExportError",
    "FormatVersionError",
    "Index",
    "IndexFileError",
    "InputError",
    "ModelClosedError",
    "ModelFolderError",
    "ModelMismatchError",
    "Overloaded",
    "ParityError",
    "ProviderError",
    "load",
]

if TYPE_CHECKING:
    from cliprt.runtime import Batcher, Index, load

    __version__: str  # pyproject.toml's, read at run time (cliprt._version)


def __getattr__(name: str) -> Any:
    # Lazy: `import cliprt` stays cheap (no onnxruntime) for the CLI's --help and tools.
    if name == "__version__":
        from cliprt._version import version

        return version()
    if name in ("load", "Index", "Batcher"):
        import cliprt.runtime

        return getattr(cliprt.runtime, name)
    raise AttributeError(f"module 'cliprt' has no attribute {name!r}")
