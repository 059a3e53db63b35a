"""The memory-lean path of towers over the external-data threshold (export.external_data,
the lazy optimizer and fp16 conversion, the lean int8 calibration, lean validation
sessions) gives what the in-memory path gives, on the tiny tower's real graphs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="exporting needs the export extra")
pytest.importorskip("optimum.exporters.onnx", reason="exporting needs the export extra")


@pytest.fixture(scope="module")
def raw_towers(tiny_clip_dir, tmp_path_factory) -> dict[str, Path]:
    """The tiny checkpoint's towers as torch exports them (inline weights), one folder each."""
    from cliprt.export.families import family_module
    from cliprt.export.onnx_graph import export_tower

    root = tmp_path_factory.mktemp("raw-towers")
    work = root / "work"
    work.mkdir()
    ckpt = family_module("clip").load(tiny_clip_dir, str(tiny_clip_dir), work)
    out = {}
    for kind, tower in (("vision", ckpt.vision), ("text", ckpt.text)):
        folder = root / kind
        folder.mkdir()
        out[kind] = export_tower(tower, kind, folder / f"{kind}.raw.onnx", opset=17, ckpt=ckpt)
    return out


def _initializers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _copy_externalized(src: Path, folder: Path) -> Path:
    from cliprt.export.external_data import externalize

    folder.mkdir()
    dst = folder / src.name
    shutil.copyfile(src, dst)
    assert externalize(dst)
    assert not externalize(dst)  # already external: left as it is
    return dst


def _same_graph(a: Path, b: Path) -> None:
    import onnx

    ga, gb = onnx.load(str(a)).graph, onnx.load(str(b)).graph
    assert [n.op_type for n in ga.node] == [n.op_type for n in gb.node]
    ia, ib = _initializers(a), _initializers(b)
    assert ia.keys() == ib.keys()
    for name in ia:
        assert ia[name].dtype == ib[name].dtype, name
        assert np.array_equal(ia[name], ib[name]), name


def test_externalize_moves_weights_out_unchanged(raw_towers, tmp_path) -> None:
    from cliprt.runtime.onnx_external import external_data_locations

    src = raw_towers["text"]
    dst = _copy_externalized(src, tmp_path / "ext")
    assert external_data_locations(dst) == ["text.raw.onnx.data"]
    assert dst.stat().st_size < src.stat().st_size // 10
    _same_graph(src, dst)


@pytest.mark.parametrize("kind", ["vision", "text"])
def test_streamed_optimize_and_fp16_equal_the_in_memory_ones(raw_towers, tmp_path, kind) -> None:
    from cliprt.export.fp16 import convert_fp16
    from cliprt.export.optimize import optimize_tower
    from cliprt.runtime.onnx_external import external_data_locations

    raw = _copy_externalized(raw_towers[kind], tmp_path / "raw")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    args = {"num_heads": 2, "hidden_size": 32, "num_layers": 2, "kind": kind}
    mem, streamed = tmp_path / "a" / "t.fp32.onnx", tmp_path / "b" / "t.fp32.onnx"
    stats_a, _ = optimize_tower(raw_towers[kind], mem, external_data=False, **args)
    stats_b, _ = optimize_tower(raw, streamed, external_data=True, **args)
    assert stats_a == stats_b and stats_b["Attention"] == 2
    assert external_data_locations(streamed) == ["t.fp32.onnx.data"]
    _same_graph(mem, streamed)
    convert_fp16(mem, tmp_path / "a" / "t.fp16.onnx", external_data=False)
    convert_fp16(streamed, tmp_path / "b" / "t.fp16.onnx", external_data=True)
    assert external_data_locations(tmp_path / "b" / "t.fp16.onnx") == ["t.fp16.onnx.data"]
    _same_graph(tmp_path / "a" / "t.fp16.onnx", tmp_path / "b" / "t.fp16.onnx")


def test_lean_calibration_gives_onnxruntimes_ranges(raw_towers, tmp_path) -> None:
    from onnxruntime.quantization.calibrate import create_calibrator

    from cliprt.export.calibration import calibration_images
    from cliprt.export.int8 import _Calibration
    from cliprt.export.int8_calibration import minmax_ranges

    raw = _copy_externalized(raw_towers["vision"], tmp_path / "raw")
    from PIL import Image

    pixels = np.stack(
        [
            (
                np.asarray(im.convert("RGB").resize((224, 224), Image.BICUBIC), np.float32) / 255.0
            ).transpose(2, 0, 1)
            for im in calibration_images(12)
        ]
    )
    reader = _Calibration("pixel_values", pixels)
    lean = minmax_ranges(raw, reader.batches, ["MatMul"])
    calibrator = create_calibrator(
        raw, ["MatMul"], augmented_model_path=str(tmp_path / "augmented.onnx")
    )
    calibrator.collect_data(reader)
    ort = calibrator.compute_data()
    assert set(lean.data) == set(ort.data) and len(lean.data) > 10
    for name, ref in ort.data.items():
        np.testing.assert_allclose(lean.data[name].range_value, ref.range_value, rtol=1e-6)


def test_validation_sessions_are_lean_for_external_data(raw_towers, tmp_path) -> None:
    import onnxruntime as ort

    from cliprt.export.validate import cpu_session

    external = _copy_externalized(raw_towers["text"], tmp_path / "raw")
    lean = cpu_session(external).get_session_options()
    assert lean.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert not lean.enable_cpu_mem_arena
    assert lean.get_session_config_entry("session.disable_prepacking") == "1"
    normal = cpu_session(raw_towers["text"]).get_session_options()
    assert normal.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert normal.enable_cpu_mem_arena


def test_release_memory_trims_on_linux() -> None:
    import sys

    from cliprt.export.memory import release_memory, rss_bytes

    assert release_memory() is sys.platform.startswith("linux")
    if sys.platform.startswith("linux"):
        assert rss_bytes() > 0


def test_constants_in_external_data_follow_the_graph(tmp_path) -> None:
    """torch stores large Constant values of a graph over 2 GB in external data too:
    written elsewhere, the graph must carry them along, not point back at the source."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import convert_model_to_external_data

    rng = np.random.default_rng(0)
    weight, const = (
        rng.standard_normal((64, 64), np.float32),
        rng.standard_normal(64).astype(np.float32),
    )
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(const, "c")),
            helper.make_node("MatMul", ["x", "w"], ["y0"]),
            helper.make_node("Add", ["y0", "c"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 64])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    src = tmp_path / "src"
    src.mkdir()
    convert_model_to_external_data(
        model, location="src.bin", size_threshold=0, convert_attribute=True
    )
    onnx.save_model(model, str(src / "m.onnx"))
    assert model.graph.node[0].attribute[0].t.data_location == TensorProto.EXTERNAL
    from cliprt.export.external_data import save_streamed

    proto = onnx.load(str(src / "m.onnx"), load_external_data=False)
    (tmp_path / "dst").mkdir()
    dst = save_streamed(proto, tmp_path / "dst" / "m.onnx", src_dir=src)
    shutil.rmtree(src)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    (y,) = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(y, x @ weight + const, rtol=1e-5, atol=1e-5)
