"""onnxruntime's transformer optimizer over an exported tower: fuses each layer's
attention into one Attention op, LayerNorm/SkipLayerNorm and QuickGelu."""

from __future__ import annotations

import logging
from pathlib import Path

from cliprt.errors import ExportError


def optimize_tower(
    src: str | Path,
    dst: str | Path,
    *,
    num_heads: int,
    hidden_size: int,
    num_layers: int,
    kind: str,
    model_type: str = "clip",
    strict: bool = True,
    external_data: bool = False,
) -> tuple[dict[str, int], bool]:
    """Fuses `src` into `dst` and checks that attention was fused in every layer.

    Args:
        src, dst: input and output .onnx files.
        num_heads, hidden_size, num_layers: of this tower's encoder (from the config).
        kind: "vision" or "text", for messages.
        model_type: onnxruntime's optimizer model type ("clip").
        strict: require Attention in every layer (CLIP, OpenCLIP); when False (a
            family whose attention onnxruntime has no pattern for) the count is only
            recorded.
        external_data: write the weights to `dst`.data (one file) beside `dst`.

    Returns:
        (get_fused_operator_statistics(): fused op name -> count, whether every layer's
        attention was fused).

    Raises:
        ExportError: strict, and the Attention count is not `num_layers` (an unfused
            layer would be several times slower, and is a sign the graph is not the
            expected one).
    """
    from onnxruntime.transformers.optimizer import optimize_model

    # opt_level=0: only the Python pattern fusions, no onnxruntime graph optimizations
    # baked in. Those are provider specific (a graph optimized for CPU may not run on
    # CUDA); the runtime applies them at session creation with ORT_ENABLE_ALL.
    # use_gpu=False keeps the fused graph portable across providers.
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    model = optimize_model(
        str(src),
        model_type=model_type,
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        use_gpu=False,
    )
    stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items()}
    all_fused = stats.get("Attention", 0) == num_layers
    if strict and not all_fused:
        raise ExportError(
            f"the {kind} tower has {num_layers} layers but onnxruntime fused attention in "
            f"{stats.get('Attention', 0)} (fused ops: {stats}); the exported graph is not "
            "the expected eager-attention CLIP graph (was it exported with SDPA?)"
        )
    model.save_model_to_file(str(dst), use_external_data_format=external_data)
    return stats, all_fused
