"""The graph passes of the static int8 formulation (export/int8.py) on small real
graphs: the patch Conv as a MatMul, and frozen activation scales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs onnx (export extra)")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _conv_model(path: Path, *, k: int, stride: int, bias: bool, size: int = 64) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((24, 3, k, k)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(24).astype(np.float32), "b"))
        inputs.append("b")
    conv = helper.make_node(
        "Conv", inputs, ["y"], name="patch", kernel_shape=[k, k], strides=[stride, stride]
    )
    # The Conv's input is computed (as CLIP's Cast); its output is the graph's.
    nodes = [helper.make_node("Relu", ["px"], ["x"]), conv]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("px", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {"px": x})[0]


@pytest.mark.parametrize("bias", [False, True])
def test_patch_conv_becomes_an_equal_matmul(tmp_path: Path, bias: bool) -> None:
    from cliprt.export.int8 import patch_conv_to_matmul

    src, dst = tmp_path / "conv.onnx", tmp_path / "mm.onnx"
    _conv_model(src, k=16, stride=16, bias=bias)
    assert patch_conv_to_matmul(src, dst) == 1
    ops = [n.op_type for n in onnx.load(str(dst)).graph.node]
    assert "Conv" not in ops and "MatMul" in ops
    x = np.random.default_rng(1).standard_normal((3, 3, 64, 64)).astype(np.float32)
    want, got = _run(src, x), _run(dst, x)
    assert got.shape == want.shape == (3, 24, 4, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # Batch 0 and 1 stay valid shapes.
    assert _run(dst, x[:1]).shape == (1, 24, 4, 4)


def test_overlapping_conv_is_left_alone(tmp_path: Path) -> None:
    from cliprt.export.int8 import patch_conv_to_matmul

    src, dst = tmp_path / "conv.onnx", tmp_path / "same.onnx"
    _conv_model(src, k=8, stride=4, bias=False)
    assert patch_conv_to_matmul(src, dst) == 0
    assert [n.op_type for n in onnx.load(str(dst)).graph.node].count("Conv") == 1


def test_frozen_scales_make_a_batch_invariant_int8_graph(tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from cliprt.export.int8 import freeze_activation_scales, patch_conv_to_matmul

    src, fp32, dyn, frozen = (tmp_path / f"{n}.onnx" for n in ("conv", "mm", "dyn", "frozen"))
    _conv_model(src, k=16, stride=16, bias=True)
    patch_conv_to_matmul(src, fp32)
    quantize_dynamic(str(fp32), str(dyn), weight_type=QuantType.QInt8, per_channel=True)
    rng = np.random.default_rng(2)
    calib = rng.standard_normal((16, 3, 64, 64)).astype(np.float32)
    assert freeze_activation_scales(dyn, fp32, frozen, calib) == 1
    ops = {n.op_type for n in onnx.load(str(frozen)).graph.node}
    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops
    assert {"QuantizeLinear", "MatMulIntegerToFloat"} <= ops
    item = calib[:1]
    loud = rng.standard_normal((3, 3, 64, 64)).astype(np.float32) * 20
    alone = _run(frozen, item)[0]
    np.testing.assert_array_equal(_run(frozen, np.concatenate([loud, item]))[3], alone)
    # The dynamic graph's result moves with the loud mates (its scale covers the batch).
    assert not np.array_equal(_run(dyn, np.concatenate([loud, item]))[3], _run(dyn, item)[0])
    ref = _run(fp32, item)[0].ravel()
    cos = float(alone.ravel() @ ref / np.linalg.norm(alone) / np.linalg.norm(ref))
    assert cos >= 0.999


@pytest.mark.parametrize(
    ("options", "op"),
    [
        ({"formulation": "dynamic"}, "DynamicQuantizeLinear"),
        ({"graph": "fused"}, "MatMulIntegerToFloat"),
    ],
)
def test_each_formulation_builds_a_close_tower(exported_tiny, tmp_path: Path, options, op) -> None:
    # The non-default formulations stay usable (`--int8-formulation dynamic`, the old
    # QOperator kernels), on the tiny tower's fused fp32 graph.
    from cliprt.export.int8 import Int8Options, quantize_int8

    src = exported_tiny.folder / "vision.fp32.onnx"
    rng = np.random.default_rng(5)
    calib = rng.standard_normal((16, 3, 224, 224)).astype(np.float32)
    opts = Int8Options(reduce_range=False, **options)
    dst = quantize_int8(src, tmp_path / "v.int8.onnx", opts, calibration=calib)
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert op in ops
    x = calib[:3]
    s = {p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (src, dst)}
    ref, got = (s[p].run(None, {"pixel_values": x})[0] for p in (src, dst))
    cos = (ref * got).sum(-1) / np.linalg.norm(ref, axis=-1) / np.linalg.norm(got, axis=-1)
    assert cos.min() >= 0.99
    if opts.static:  # an item alone == among mates
        alone = s[dst].run(None, {"pixel_values": x[:1]})[0]
        np.testing.assert_array_equal(got[0], alone[0])


def test_qoperator_kernels_still_build(tmp_path: Path) -> None:
    # cliprt's previous default (QLinearMatMul, calibrated output scales).
    from cliprt.export.int8 import Int8Options, quantize_int8

    src = tmp_path / "conv.onnx"
    _conv_model(src, k=16, stride=16, bias=True)
    calib = np.random.default_rng(6).standard_normal((16, 3, 64, 64)).astype(np.float32)
    opts = Int8Options(kernels="qoperator", reduce_range=False)
    dst = quantize_int8(src, tmp_path / "q.onnx", opts, raw=src, calibration=calib)
    assert "QLinearMatMul" in {n.op_type for n in onnx.load(str(dst)).graph.node}
    ref, got = _run(src, calib[:2]), _run(dst, calib[:2])
    assert got.shape == ref.shape
    cos = float(ref.ravel() @ got.ravel() / np.linalg.norm(ref) / np.linalg.norm(got))
    assert cos >= 0.99
