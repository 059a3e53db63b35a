"""cliprt.export: a CLIP checkpoint -> a validated model folder of ONNX towers.

Needs the `export` extra (torch, transformers, optimum-onnx, onnx).

    from cliprt.export import export_model
    export_model("random:ViT-B-32", "models/vitb32", precisions=("fp32", "int8"))
"""

from __future__ import annotations

from cliprt.export.pipeline import export_model, parse_precisions

__all__ = ["export_model", "parse_precisions"]
