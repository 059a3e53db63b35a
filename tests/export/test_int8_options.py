"""int8 variant options: VNNI detection, reduce_range default, kept projection."""

from __future__ import annotations

import platform
from pathlib import Path

from cliprt.export.int8 import (
    Int8Options,
    cpu_has_vnni,
    default_reduce_range,
    projection_nodes,
    quantize_int8,
)


def test_cpu_has_vnni_reads_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert cpu_has_vnni(info) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_has_vnni(info) is False
    assert cpu_has_vnni(tmp_path / "missing") is None


def test_reduce_range_default_follows_the_cpu() -> None:
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    if x86:
        assert default_reduce_range() is (cpu_has_vnni() is not True)
    assert Int8Options().reduce_range is default_reduce_range()


def test_keep_projection_leaves_the_projection_in_fp32(exported_tiny, tmp_path: Path) -> None:
    import onnx

    src = exported_tiny.folder / "text.fp32.onnx"
    (proj,) = projection_nodes(src)
    options = Int8Options(formulation="dynamic", keep_projection=True)
    dst = quantize_int8(src, tmp_path / "t.onnx", options)
    nodes = {n.name: n for n in onnx.load(str(dst)).graph.node}
    assert nodes[proj].op_type == "MatMul"
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in nodes.values())


def test_dynamic_formulation_and_chained_passes(exported_tiny, tmp_path: Path) -> None:
    """The dynamic formulation stays available; a further pass (src, dst) chains after
    the formulation's and sees its output."""
    import onnx

    seen: list[set[str]] = []

    def count_pass(src: Path, dst: Path) -> None:
        seen.append({n.op_type for n in onnx.load(str(src)).graph.node})
        dst.write_bytes(src.read_bytes())

    src = exported_tiny.folder / "text.fp32.onnx"
    options = Int8Options(formulation="dynamic", extra_passes=(count_pass,))
    dst = quantize_int8(src, tmp_path / "t.onnx", options)
    assert seen and ("DynamicQuantizeMatMul" in seen[0] or "MatMulInteger" in seen[0])
    assert dst.read_bytes()[:4] and not list(tmp_path.glob("*.pass*.onnx"))
    d = options.to_dict()
    assert d["batch_dependent"] is True and d["extra_passes"] == ["count_pass"]


def test_static_formulation_needs_calibration(exported_tiny, tmp_path: Path) -> None:
    import pytest

    src = exported_tiny.folder / "text.fp32.onnx"
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(src, tmp_path / "t.onnx", Int8Options())
    with pytest.raises(ValueError, match="formulation 'qat'"):
        Int8Options(formulation="qat")
