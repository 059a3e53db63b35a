"""The int8 token embedding: per-row int8 codes and scales, the graph pass on a real
exported text tower, and its place in the exported int8 variant."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cliprt.manifest import read_manifest

onnx = pytest.importorskip("onnx", reason="needs the export extra (onnx)")
from cliprt.export.int8_embedding import quantize_rows, quantize_token_embeddings  # noqa: E402


def test_rows_round_trip_within_half_a_step_of_their_own_scale() -> None:
    rng = np.random.default_rng(0)
    # Rows of very different magnitudes, and an all-zero row.
    table = rng.normal(size=(300, 17)).astype(np.float32) * np.logspace(-4, 2, 300)[:, None]
    table[7] = 0
    q, scales = quantize_rows(table)
    assert q.dtype == np.int8 and scales.dtype == np.float32 and scales.shape == (300, 1)
    assert np.abs(q).max() <= 127
    err = np.abs(q.astype(np.float32) * scales - table)
    assert (err <= scales * 0.5 * (1 + 1e-5)).all()
    assert (q[7] == 0).all() and np.isfinite(scales).all()


def test_exported_int8_text_tower_stores_the_table_in_int8(tiny_model_dir: Path) -> None:
    man = read_manifest(tiny_model_dir)
    graph = onnx.load(str(tiny_model_dir / man.towers["text"]["int8"].file)).graph
    inits = {i.name: i for i in graph.initializer}
    table = "text_model.embeddings.token_embedding.weight"
    assert table not in inits
    assert inits[f"{table}_int8"].data_type == onnx.TensorProto.INT8
    assert list(inits[f"{table}_row_scale"].dims) == [man.arch["text"]["vocab_size"], 1]
    (entry,) = man.export["int8_embedding"]
    assert entry["table"] == table and entry["bytes_after"] < entry["bytes_before"] / 3
    # The fp32 variant keeps its fp32 table; the vision tower has no token table.
    fp32 = {i.name for i in onnx.load(str(tiny_model_dir / "text.fp32.onnx")).graph.initializer}
    assert table in fp32


def test_pass_keeps_outputs_close_and_leaves_vision_alone(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import onnxruntime as ort

    text = tmp_path / "text.onnx"
    vision = tmp_path / "vision.onnx"
    shutil.copyfile(tiny_model_dir / "text.fp32.onnx", text)
    shutil.copyfile(tiny_model_dir / "vision.fp32.onnx", vision)
    before = vision.read_bytes()
    assert quantize_token_embeddings(vision) == []
    assert vision.read_bytes() == before
    (done,) = quantize_token_embeddings(text)
    assert done.max_abs_error > 0
    ids = np.array([[49406, 320, 1125, 539, 320, 2368, 49407, 49407]], dtype=np.int64)
    a = ort.InferenceSession(str(tiny_model_dir / "text.fp32.onnx")).run(None, {"input_ids": ids})[
        0
    ]
    b = ort.InferenceSession(str(text)).run(None, {"input_ids": ids})[0]
    cos = float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))
    assert 0.999 < cos < 1.0
    assert text.stat().st_size < (tiny_model_dir / "text.fp32.onnx").stat().st_size
