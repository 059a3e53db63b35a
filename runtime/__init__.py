"""cliprt.runtime: load an exported model folder with onnxruntime only (no torch).

from cliprt.runtime import load
model = load("shapes", device="cpu")
emb = model.encode_images(["cat.jpg"])          # float32 (1, D), L2-normalised
"""

from cliprt.runtime.batching import Batcher
from cliprt.runtime.failures import EncodeResult, ImageFailure
from cliprt.runtime.index import Index, available_isas
from cliprt.runtime.model import ClipModel, load, shipped_models
from cliprt.runtime.providers import CudaOptions

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
