"""The fp16 variant (for the CUDA execution provider): the optimized fp32 graph with
weights and activations in float16, inputs and outputs kept in float32."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

# Ops left in fp32. The text tower's causal mask is a large negative constant that fp16
# would round to -inf (-inf - -inf = NaN in the softmax); the fused Attention op builds
# its mask internally, but graphs whose attention was not fused still carry it.
# Outputs are cast back to fp32 by keep_io_types.
_FP32_OPS = ("Softmax",)


def convert_fp16(src: str | Path, dst: str | Path, *, external_data: bool = False) -> Path:
    """Converts the optimized fp32 graph `src` to fp16 in `dst` (fp32 IO); with
    external_data the weights go to `dst`.data beside it.

    With external data the graph is converted without its weights (onnxruntime's
    converter then only retypes the external tensors) and each weight is converted
    while it is copied into the new data file (external_data.save_streamed): loaded
    whole, a 2.5 GB tower would be held about three times (the graph, symbolic shape
    inference's copy of it, the fp16 tensors).
    """
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    src = Path(src)
    proto = onnx.load(str(src), load_external_data=not external_data)
    if external_data:
        # Small tensors (biases, norms, shape constants) are read in: shape inference
        # and the converter's cleanup passes read some of their values.
        _load_small_tensors(proto, src.parent)
    model = OnnxModel(proto)
    # keep_io_types: callers feed and read float32; the casts happen in-graph.
    with _shapes_from_dims(src.parent) if external_data else nullcontext():
        model.convert_float_to_float16(keep_io_types=True, op_block_list=list(_FP32_OPS))
    if external_data:
        from cliprt.export.external_data import save_onnx_model_streamed

        save_onnx_model_streamed(model, dst, src_dir=src.parent)
    else:
        model.save_model_to_file(str(dst))
    return Path(dst)


@contextmanager
def _shapes_from_dims(folder: Path) -> Iterator[None]:
    """onnxruntime's converter types each initializer it retypes from
    numpy_helper.to_array(tensor).shape, which reads the whole tensor (from external
    data: the file, with the float32 bytes of a tensor now typed float16, which does
    not even reshape). The shape is the tensor's dims: read there, nothing is loaded.
    Symbolic shape inference reads the few small constants it needs lazily, by their
    relative location: hence the chdir to the model's folder. Both restored on exit
    (the export is one thread)."""
    import importlib
    import os
    import sys

    from onnx import helper
    from onnxruntime.transformers import onnx_model

    # onnx_model imports the converter as the top-level module "float16" (onnxruntime
    # puts its transformers folder on sys.path), not onnxruntime.transformers.float16.
    float16: Any = sys.modules.get(
        onnx_model.convert_float_to_float16.__module__
    ) or importlib.import_module(onnx_model.convert_float_to_float16.__module__)
    original = float16.make_value_info_from_tensor

    def from_dims(tensor: Any) -> Any:
        return helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))

    previous = os.getcwd()
    float16.make_value_info_from_tensor = from_dims
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
        float16.make_value_info_from_tensor = original


_SMALL_TENSOR_BYTES = 1 << 20


def _load_small_tensors(model: Any, folder: Path) -> None:
    from onnx.external_data_helper import (
        ExternalDataInfo,
        load_external_data_for_tensor,
        uses_external_data,
    )

    from cliprt.export.external_data import tensors_of

    for tensor, _ in tensors_of(model.graph):
        if uses_external_data(tensor):
            length = ExternalDataInfo(tensor).length
            if length is not None and length < _SMALL_TENSOR_BYTES:
                load_external_data_for_tensor(tensor, str(folder))  # now inline
