"""Writes the one-op int8 models that ort_op.py runs (on the x86 host: needs onnx).

    python scripts/ort-arm-probe/make_ops.py OUTDIR

dq_M_K_N.onnx: one com.microsoft.DynamicQuantizeMatMul (int8 weights, scale 0.01), the op
onnxruntime fuses the dynamic int8 formulation into; qlm.onnx: QuantizeLinear ->
QLinearMatMul -> DequantizeLinear, the static formulation (benchmarks/results/aarch64.md).
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
f32 = TensorProto.FLOAT
for m, k, n in [(1, 64, 64), (50, 768, 768), (50, 768, 3072)]:
    b = np.random.default_rng(1).integers(-127, 128, (k, n), dtype=np.int8)
    node = helper.make_node(
        "DynamicQuantizeMatMul", ["A", "B", "bs"], ["Y"], domain="com.microsoft"
    )
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("A", f32, [m, k])],
        [helper.make_tensor_value_info("Y", f32, [m, n])],
        [
            numpy_helper.from_array(b, "B"),
            numpy_helper.from_array(np.array([0.01], np.float32), "bs"),
        ],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    onnx.save(helper.make_model(g, opset_imports=opsets), out / f"dq_{m}_{k}_{n}.onnx")

b = np.random.default_rng(1).integers(-127, 128, (768, 768), dtype=np.int8)
consts = {"as": np.float32(0.02), "az": np.uint8(128), "bs": np.float32(0.01), "bz": np.int8(0)}
consts |= {"ys": np.float32(0.5), "yz": np.uint8(128)}
inits = [numpy_helper.from_array(b, "B")]
inits += [numpy_helper.from_array(np.array(v), name) for name, v in consts.items()]
nodes = [
    helper.make_node("QuantizeLinear", ["A", "as", "az"], ["Aq"]),
    helper.make_node("QLinearMatMul", ["Aq", "as", "az", "B", "bs", "bz", "ys", "yz"], ["Yq"]),
    helper.make_node("DequantizeLinear", ["Yq", "ys", "yz"], ["Y"]),
]
g = helper.make_graph(
    nodes,
    "g",
    [helper.make_tensor_value_info("A", f32, [50, 768])],
    [helper.make_tensor_value_info("Y", f32, [50, 768])],
    inits,
)
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), out / "qlm.onnx")
print("wrote", sorted(p.name for p in out.glob("*.onnx")))
