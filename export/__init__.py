"""cliprt.export: a CLIP, OpenCLIP or SigLIP checkpoint -> a validated model folder of
ONNX towers (one module per family in cliprt.export.families, one shared pipeline).

Needs the `export` extra (torch, transformers, optimum-onnx, onnx).

    from cliprt.export import export_model
    export_model("random:ViT-B-32", "models/vitb32", precisions=("fp32", "int8"))
"""

from __future__ import annotations

from cliprt.export.int8 import Int8Options
from cliprt.export.pipeline import export_model, parse_precisions
from cliprt.export.validate import DEFAULT_GATES, Gate

__all__ = ["DEFAULT_GATES", "Gate", "Int8Options", "export_model", "parse_precisions"]
