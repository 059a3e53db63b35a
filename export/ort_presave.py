"""Int8 towers saved as onnxruntime's CPU graph optimizer leaves them, so that a model's
first load on an edge box does less work.

`cliprt.load` creates every session with ORT_ENABLE_ALL; on a ViT-B/32 int8 tower that
spends 0.03 s (vision) to 0.07 s (text) of CPU rewriting the graph (QuickGelu,
FusedMatMul, SkipLayerNorm, constant folding of shape subgraphs) at every load. The
EXTENDED level's rewrite is done once here instead; the runtime still asks for ENABLE_ALL,
which then only applies the layout transforms of the CPU it runs on (the part that
depends on the machine, which is why this stops at EXTENDED). Measured on ViT-B/32 int8:
the embeddings are bit-identical to loading the unoptimized file (benchmarks/results/
edge_footprint.md). Only int8 files are rewritten: int8 runs on onnxruntime's CPU
provider only, the provider the rewrite is made for (fp16 and fp32 also run on CUDA,
whose fusions differ).
"""

from __future__ import annotations

import os
from pathlib import Path

# protobuf's 2 GiB limit on one serialized model, with room for what the rewrite adds.
_MAX_BYTES = 1_500_000_000


def presave_optimized(path: Path) -> bool:
    """Rewrites the .onnx at `path` (no external data) in place with onnxruntime's
    EXTENDED CPU optimizations applied. Returns False (file untouched) for files too
    large for one protobuf.

    Raises:
        onnxruntime's errors when it cannot load the file (a bug of the export).
    """
    import onnxruntime as ort

    if path.stat().st_size > _MAX_BYTES:
        return False
    tmp = path.with_name(f".{path.name}.optimized.tmp")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp)
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    try:
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True
