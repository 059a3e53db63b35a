"""torch -> ONNX for the two towers, through optimum-onnx's exporter.

optimum ships OnnxConfigs for `clip-text-with-projection` (with an extra
last_hidden_state output) and `clip_vision_model` (no projection); the towers here need
exactly one output each (the projected embeddings) and a fixed image size, so two small
subclasses narrow their inputs and outputs. optimum's export_pytorch then drives
torch.onnx.export with the TorchScript exporter (dynamo=False): that is the graph
onnxruntime's transformer optimizer pattern-matches for Attention/LayerNorm/Gelu
fusion; the dynamo exporter's graphs are not fused by it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from cliprt.errors import ExportError

VISION_INPUT, VISION_OUTPUT = "pixel_values", "image_embeds"
TEXT_INPUT, TEXT_OUTPUT = "input_ids", "text_embeds"


def _onnx_configs() -> tuple[type, type]:
    # Built on first use: importing optimum is slow and needs the export extra.
    from optimum.exporters.onnx.model_configs import (
        CLIPTextWithProjectionOnnxConfig,
        CLIPVisionModelOnnxConfig,
    )

    class VisionTowerOnnxConfig(CLIPVisionModelOnnxConfig):
        """pixel_values [batch, 3, H, W] -> image_embeds [batch, D]; H, W fixed by the
        position embeddings, so only the batch is dynamic."""

        @property
        def inputs(self) -> dict[str, dict[int, str]]:
            return {VISION_INPUT: {0: "batch_size"}}

        @property
        def outputs(self) -> dict[str, dict[int, str]]:
            return {VISION_OUTPUT: {0: "batch_size"}}

    class TextTowerOnnxConfig(CLIPTextWithProjectionOnnxConfig):
        """input_ids [batch, sequence] -> text_embeds [batch, D]; no attention_mask (right
        padding + causal mask + first-EOS pooling make it redundant)."""

        @property
        def inputs(self) -> dict[str, dict[int, str]]:
            return {TEXT_INPUT: {0: "batch_size", 1: "sequence_length"}}

        @property
        def outputs(self) -> dict[str, dict[int, str]]:
            return {TEXT_OUTPUT: {0: "batch_size"}}

    return VisionTowerOnnxConfig, TextTowerOnnxConfig


def onnx_bytes(folder: str | Path) -> int:
    """Bytes of everything an export wrote into `folder` (graph plus external data)."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())


def export_tower(
    tower: Any,
    kind: str,
    path: str | Path,
    *,
    opset: int,
    exporter: str = "optimum-clip",
    ckpt: Any = None,
) -> Path:
    """Exports one tower to an fp32 ONNX file (external data beside it when large).

    Args:
        tower: a Checkpoint's .vision or .text.
        kind: "vision" or "text".
        path: the .onnx file to write, alone in its folder.
        opset: the ONNX opset, e.g. 17.
        exporter: "optimum-clip" (CLIP*WithProjection modules through optimum's
            OnnxConfigs) or "torch" (any module, torch.onnx.export with dynamo=False).
        ckpt: the Checkpoint, for the "torch" exporter's example input shapes.

    Raises:
        ExportError: torch.onnx.export failed.
    """
    if exporter == "torch":
        return _export_plain(tower, kind, Path(path), opset=opset, ckpt=ckpt)
    from optimum.exporters.onnx.convert import export_pytorch

    vision_cfg, text_cfg = _onnx_configs()
    cls = vision_cfg if kind == "vision" else text_cfg
    onnx_config = cls(tower.config, task="feature-extraction")
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # TracerWarnings on shape checks that are constant for a fixed image size and
            # the aten::index note on the first-EOS gather (its indices are never negative).
            warnings.simplefilter("ignore")
            export_pytorch(tower, onnx_config, opset, path, device="cpu")
    except Exception as exc:  # torch raises many unrelated types; all mean the same here
        raise ExportError(f"torch.onnx.export of the {kind} tower failed: {exc}") from exc
    return path


def _export_plain(tower: Any, kind: str, path: Path, *, opset: int, ckpt: Any) -> Path:
    # The TorchScript exporter (dynamo=False) for the same reason as optimum's: its
    # graphs are the ones onnxruntime's fusions know. Only the batch is dynamic: the
    # image size is fixed by the position embeddings and SigLIP's text by its padding.
    import torch

    if kind == "vision":
        example = torch.zeros(2, 3, ckpt.image_size, ckpt.image_size)
        names = (VISION_INPUT, VISION_OUTPUT)
    else:
        example = torch.full((2, ckpt.context_length), ckpt.pad_id, dtype=torch.int64)
        example[:, 0] = ckpt.bos_id
        names = (TEXT_INPUT, TEXT_OUTPUT)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                tower,
                (example,),
                str(path),
                input_names=[names[0]],
                output_names=[names[1]],
                dynamic_axes={names[0]: {0: "batch_size"}, names[1]: {0: "batch_size"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:  # torch raises many unrelated types; all mean the same here
        raise ExportError(f"torch.onnx.export of the {kind} tower failed: {exc}") from exc
    return path
