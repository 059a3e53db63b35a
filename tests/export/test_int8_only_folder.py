"""`cliprt export --precision int8` alone makes a folder an edge box can take: no fp32
file in it, loads as int8, and passes `cliprt verify` there."""

from __future__ import annotations

from pathlib import Path

import pytest

import cliprt
from cliprt.cli import main
from cliprt.manifest import read_manifest


def test_int8_only_export_loads_and_verifies(tiny_clip_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("optimum.exporters.onnx", reason="needs the export extra (optimum-onnx)")
    out = tmp_path / "edge"
    assert main(["export", str(tiny_clip_dir), str(out), "--precision", "int8", "-q"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "manifest.json",
        "preprocessor_config.json",
        "text.int8.onnx",
        "tokenizer.json",
        "vision.int8.onnx",
    ]
    man = read_manifest(out)
    assert man.precisions("vision") == man.precisions("text") == ("int8",)
    assert man.probes["texts"]
    with cliprt.load(out, device="cpu") as model:
        assert model.precision == "int8"
        assert model.encode_texts(["a photo of a cat"]).shape == (1, man.embed_dim)
    assert main(["verify", str(out), "--device", "cpu"]) == 0
