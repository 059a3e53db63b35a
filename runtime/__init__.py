"""cliprt.runtime: load an exported model folder with onnxruntime only (no torch).

from cliprt.runtime import load
model = load("shapes", device="cpu")
emb = model.encode_images(["cat.jpg"])          # float32 (1, D), L2-normalised
"""

from typing import TYPE_CHECKING, Any

from cliprt.runtime.failures import EncodeResult, ImageFailure
from cliprt.runtime.index import Index, available_isas
from cliprt.runtime.model import ClipModel, load, shipped_models
from cliprt.runtime.providers import CudaOptions

if TYPE_CHECKING:
    from cliprt.runtime.batching import Batcher

__all__ = [
    "Batcher",
    "ClipModel",
    "CudaOptions",
    "EncodeResult",
    "ImageFailure",
    "Index",
    "available_isas",
    "load",
    "shipped_models",
]


def __getattr__(name: str) -> Any:
    # Lazy: the batcher imports asyncio (about 0.05 s of CPU), which a process that only
    # loads a model and embeds does not need at cold start.
    if name == "Batcher":
        from cliprt.runtime.batching import Batcher

        return Batcher
    raise AttributeError(f"module 'cliprt.runtime' has no attribute {name!r}")
