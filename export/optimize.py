"""onnxruntime's transformer optimizer over an exported tower: fuses each layer's
attention into one Attention op, LayerNorm/SkipLayerNorm and QuickGelu."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

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
    options = {
        "model_type": model_type,
        "num_heads": num_heads,
        "hidden_size": hidden_size,
        "opt_level": 0,
        "use_gpu": False,
    }
    model = (
        _optimize_lazily(Path(src), options)
        if external_data
        else optimize_model(str(src), **options)
    )
    stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items()}
    all_fused = stats.get("Attention", 0) == num_layers
    if strict and not all_fused:
        raise ExportError(
            f"the {kind} tower has {num_layers} layers but onnxruntime fused attention in "
            f"{stats.get('Attention', 0)} (fused ops: {stats}); the exported graph is not "
            "the expected eager-attention CLIP graph (was it exported with SDPA?)"
        )
    if external_data:
        from cliprt.export.external_data import save_onnx_model_streamed

        # The weights the fusions did not touch are still in src's data file: copied
        # one tensor at a time, never all loaded (see external_data).
        save_onnx_model_streamed(model, dst, src_dir=Path(src).parent)
    else:
        model.save_model_to_file(str(dst))
    return stats, all_fused


def _optimize_lazily(src: Path, options: dict) -> Any:
    """Fuses a large tower without loading its weights.

    Loaded whole, a 2.5 GB tower is copied again by symbolic shape inference (and a
    graph over 2 GB cannot be serialized for onnx's shape inference at all). Loaded
    without its external data, the graph is small: shape inference runs on it, and the
    fusions read only the weights they merge (q/k/v), lazily, by their relative
    location; the rest stays on disk until the caller streams it into the new data
    file. onnx resolves those locations against the working directory, hence the chdir
    (the export is one thread).
    """
    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    proto = onnx.load(str(src), load_external_data=False)
    previous = os.getcwd()
    os.chdir(src.parent)
    try:
        model = optimize_model(proto, **options)
    finally:
        os.chdir(previous)
    return model
