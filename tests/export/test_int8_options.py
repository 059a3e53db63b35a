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
    dst = quantize_int8(src, tmp_path / "t.onnx", Int8Options(keep_projection=True))
    nodes = {n.name: n for n in onnx.load(str(dst)).graph.node}
    assert nodes[proj].op_type == "MatMul"
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in nodes.values())
