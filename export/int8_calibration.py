"""Static int8 calibration of a tower whose weights live in external data.

onnxruntime's calibrator loads the model with its weights (twice: quantize_static's
own copy and the calibrator's), writes an augmented copy and runs it in a default
session (pre-packed weights, arena): for a 2.5 GB tower that is over four copies of
the weights at once. This computes the same MinMax ranges from the graph alone: the
ReduceMin/ReduceMax outputs onnxruntime's MinMaxCalibrater adds to the same tensors
(inputs and outputs of the nodes to quantize), added to a weight-less copy of the graph
saved beside the original so that its external data resolves to the same file, run in
a lean session (validate.cpu_session). The ranges are handed to quantize_static through
its calibration cache, so the quantization itself is onnxruntime's.
"""

from __future__ import annotations

import inspect
import itertools
from pathlib import Path
from typing import Any


def supports_calibration_cache() -> bool:
    """Whether this onnxruntime's quantize_static takes precomputed ranges
    (calibration_cache_path)."""
    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def calibration_tensors(model: Any, op_types: list[str] | None) -> list[str]:
    """The tensors onnxruntime's calibrator measures: float inputs and outputs (not
    initializers) of the nodes of `op_types` (every node when empty), in graph order."""
    import onnx

    value_infos = {vi.name: vi for vi in model.graph.value_info}
    value_infos.update({o.name: o for o in model.graph.output})
    value_infos.update({i.name: i for i in model.graph.input})
    initializers = {t.name for t in model.graph.initializer}
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    out: dict[str, None] = {}
    for node in model.graph.node:
        if op_types and node.op_type not in op_types:
            continue
        for name in itertools.chain(node.input, node.output):
            vi = value_infos.get(name)
            if (
                vi is not None
                and vi.type.HasField("tensor_type")
                and vi.type.tensor_type.elem_type in float_types
                and name not in initializers
            ):
                out[name] = None
    return list(out)


def minmax_ranges(
    src: str | Path, batches: list[dict[str, Any]], op_types: list[str] | None
) -> Any:
    """MinMax calibration ranges of `src` over `batches`, without loading its weights.

    Args:
        src: the .onnx to calibrate (its external data beside it).
        batches: the session feeds, one dict per batch.
        op_types: the op types to quantize (as given to quantize_static).

    Returns:
        onnxruntime.quantization.calibrate.TensorsData (CalibrationMethod.MinMax), the
        same ranges MinMaxCalibrater computes (not symmetric, no moving average).
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

    from cliprt.export.validate import cpu_session

    src = Path(src)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(src), load_external_data=False))
    tensors = calibration_tensors(model, op_types)
    elem_types = {vi.name: vi.type.tensor_type.elem_type for vi in model.graph.value_info}
    elem_types.update({vi.name: vi.type.tensor_type.elem_type for vi in model.graph.input})
    elem_types.update({vi.name: vi.type.tensor_type.elem_type for vi in model.graph.output})
    reshape = "cliprt_calibration_flat"
    model.graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), reshape))
    # Each tensor's ReduceMin/ReduceMax go right after the node that produces it (as
    # onnxruntime's calibrator places them before its first consumer): appended at the
    # end of the graph instead, they would keep every calibrated activation of every
    # layer alive until the last layer ran (over 10 GB for ViT-H at batch 8).
    after: dict[str, list[Any]] = {}
    producers = {
        out: node.name or f"#{i}" for i, node in enumerate(model.graph.node) for out in node.output
    }
    outputs = []
    for i, name in enumerate(tensors):
        for op in ("ReduceMin", "ReduceMax"):
            reduced, flat = f"cliprt_calib_{i}_{op}", f"cliprt_calib_{i}_{op}_flat"
            after.setdefault(producers.get(name, ""), []).extend(
                [
                    helper.make_node(op, [name], [reduced], keepdims=1),
                    helper.make_node("Reshape", [reduced, reshape], [flat]),
                ]
            )
            model.graph.output.append(helper.make_tensor_value_info(flat, elem_types[name], [1]))
            outputs.append(flat)
    nodes = list(after.get("", []))  # tensors no node produces: the graph inputs
    for i, node in enumerate(model.graph.node):
        nodes.append(node)
        nodes.extend(after.get(node.name or f"#{i}", []))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    # Saved beside src so that its external data locations resolve to the same file.
    augmented = src.with_name(f".{src.stem}.calibration.onnx")
    onnx.save_model(model, str(augmented))  # a few MB: the weights stay external
    del model
    try:
        session = cpu_session(augmented, lean=True)
        lows = [np.inf] * len(tensors)
        highs = [-np.inf] * len(tensors)
        # One input row per run: the ranges are minima and maxima over every row either
        # way, and a run holds several activations of every layer at once (the reduce
        # nodes do not always run as soon as their tensor exists), which for ViT-H at
        # 8 rows a run reached 10 GB.
        rows = (
            {k: v[i : i + 1] for k, v in feed.items()}
            for feed in batches
            for i in range(len(next(iter(feed.values()))))
        )
        for feed in rows:
            values = session.run(outputs, feed)
            for i in range(len(tensors)):
                lows[i] = np.nanmin([lows[i], float(values[2 * i][0])])
                highs[i] = np.nanmax([highs[i], float(values[2 * i + 1][0])])
        del session
    finally:
        augmented.unlink(missing_ok=True)
    ranges = {
        name: (np.array([lo], dtype=np.float32), np.array([hi], dtype=np.float32))
        for name, lo, hi in zip(tensors, lows, highs, strict=True)
    }
    return TensorsData(CalibrationMethod.MinMax, ranges)
