"""The fp16 variant (for the CUDA execution provider): the optimized fp32 graph with
weights and activations in float16, inputs and outputs kept in float32."""

from __future__ import annotations

from pathlib import Path

# Ops left in fp32. The text tower's causal mask is a large negative constant that fp16
# would round to -inf (-inf - -inf = NaN in the softmax); the fused Attention op builds
# its mask internally, but graphs whose attention was not fused still carry it.
# Outputs are cast back to fp32 by keep_io_types.
_FP32_OPS = ("Softmax",)


def convert_fp16(src: str | Path, dst: str | Path, *, external_data: bool = False) -> Path:
    """Converts the optimized fp32 graph `src` to fp16 in `dst` (fp32 IO); with
    external_data the weights go to `dst`.data beside it."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    # keep_io_types: callers feed and read float32; the casts happen in-graph.
    model.convert_float_to_float16(keep_io_types=True, op_block_list=list(_FP32_OPS))
    model.save_model_to_file(str(dst), use_external_data_format=external_data)
    return Path(dst)
