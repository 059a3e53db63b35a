"""The exported tiny model folder: manifest contents, checksums, fused ops, parity."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cliprt.manifest import PRECISIONS, read_manifest, verified_path


def test_manifest_scalars(exported_tiny, tiny_clip_dir: Path) -> None:
    from safetensors.numpy import load_file

    m = read_manifest(exported_tiny.folder)
    assert (m.embed_dim, m.image_size, m.context_length) == (16, 224, 77)
    assert (m.bos_id, m.eos_id, m.pad_id) == (49406, 49407, 49407)
    weights = load_file(str(tiny_clip_dir / "model.safetensors"))
    assert m.logit_scale == pytest.approx(math.exp(float(weights["logit_scale"])), rel=1e-6)
    assert m.source == str(tiny_clip_dir.resolve())
    assert m.export["normalized"] is False
    assert m.arch["vision"]["layers"] == 2 and m.arch["text"]["layers"] == 2


def test_preprocessing_comes_from_the_checkpoint(exported_tiny, tiny_clip_dir: Path) -> None:
    m = read_manifest(exported_tiny.folder)
    cfg = json.loads((tiny_clip_dir / "preprocessor_config.json").read_text())
    p = m.preprocessing
    assert p.resize_shortest_edge == cfg["size"]["shortest_edge"] == 224
    assert (p.crop_height, p.crop_width) == (224, 224)
    assert p.resample == cfg["resample"] == 3
    assert p.rescale_factor == pytest.approx(1 / 255)
    assert p.image_mean == tuple(cfg["image_mean"])
    assert p.image_std == tuple(cfg["image_std"])
    assert p.do_convert_rgb and p.do_normalize and p.do_center_crop


def test_every_file_is_listed_and_checks_out(exported_tiny) -> None:
    folder = exported_tiny.folder
    m = read_manifest(folder)
    listed = {m.tokenizer.file, m.preprocessor.file, "manifest.json"}
    for tower in ("vision", "text"):
        assert m.precisions(tower) == PRECISIONS
        for precision, v in m.towers[tower].items():
            assert v.file == f"{tower}.{precision}.onnx"
            assert v.opset == 17
            verified_path(folder, v)
            listed.add(v.file)
    verified_path(folder, m.tokenizer)
    verified_path(folder, m.preprocessor)
    assert {p.name for p in folder.iterdir()} == listed


def test_io_names(exported_tiny) -> None:
    import onnxruntime as ort

    m = read_manifest(exported_tiny.folder)
    for tower, (inp, out) in {
        "vision": ("pixel_values", "image_embeds"),
        "text": ("input_ids", "text_embeds"),
    }.items():
        for v in m.towers[tower].values():
            assert (v.input_name, v.output_name) == (inp, out)
            s = ort.InferenceSession(str(exported_tiny.folder / v.file))
            assert [i.name for i in s.get_inputs()] == [inp]
            assert [o.name for o in s.get_outputs()] == [out]
            # fp32 IO for every precision (fp16 keeps its IO types)
            assert s.get_inputs()[0].type == (
                "tensor(float)" if tower == "vision" else "tensor(int64)"
            )
            assert s.get_outputs()[0].type == "tensor(float)"


def test_attention_fused_in_every_layer(exported_tiny) -> None:
    m = read_manifest(exported_tiny.folder)
    for tower in ("vision", "text"):
        for v in m.towers[tower].values():
            assert v.fused_ops["Attention"] == m.arch[tower]["layers"]


def test_parity_recorded_within_default_gates(exported_tiny) -> None:
    m = read_manifest(exported_tiny.folder)
    for tower in ("vision", "text"):
        t = m.towers[tower]
        assert t["fp32"].parity.max_abs_diff <= 1e-4
        assert t["fp16"].parity.min_cosine >= 0.999
        assert t["int8"].parity.min_cosine >= 0.99
        for v in t.values():
            assert v.parity.n_inputs >= 8
            assert v.parity.min_cosine <= v.parity.mean_cosine <= 1 + 1e-9


def test_int8_quantizes_matmul_only(exported_tiny) -> None:
    import onnx

    m = read_manifest(exported_tiny.folder)
    int8 = m.export["int8"]
    assert int8["per_channel"] is True
    assert int8["op_types"] == ["MatMul"]
    assert isinstance(int8["reduce_range"], bool)
    # The default formulation: static, calibrated, batch-invariant; its measured drift
    # is recorded (0: an item's embedding does not depend on its batch mates).
    assert int8["formulation"] == "static" and int8["batch_dependent"] is False
    assert int8["kernels"] == "integer" and int8["patch_embedding"] is True
    assert "frozen activation scales" in int8["description"]
    assert int8["batch_drift"] == {"vision": 0.0, "text": 0.0}
    for tower in ("vision", "text"):
        ops = {
            n.op_type
            for n in onnx.load(str(exported_tiny.folder / f"{tower}.int8.onnx")).graph.node
        }
        # Static: every activation scale is a constant (no per-run DynamicQuantizeLinear).
        assert "MatMulIntegerToFloat" in ops and "QuantizeLinear" in ops
        assert "DynamicQuantizeLinear" not in ops
        # The patch embedding is an int8 MatMul, not a Conv of any kind.
        assert not ops & {"Conv", "ConvInteger", "QLinearConv"}


def test_progress_reports_each_stage_with_seconds(exported_tiny) -> None:
    lines = exported_tiny.progress
    for stage in (
        "load checkpoint",
        "vision: optimize",
        "text: optimize",
        "validate int8",
        "publish",
    ):
        assert any(line.startswith(f"{stage}: ") and " s" in line for line in lines), stage
    m = read_manifest(exported_tiny.folder)
    assert set(m.export["timings_s"]) >= {"vision: torch -> onnx", "validate fp16"}


def test_outputs_are_unnormalised_projected_embeddings(exported_tiny, tiny_clip_dir: Path) -> None:
    import onnxruntime as ort
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(str(tiny_clip_dir), attn_implementation="eager").eval()
    rng = np.random.default_rng(1)
    pixels = rng.standard_normal((3, 3, 224, 224)).astype(np.float32)
    ids = np.array([[49406, 320, 1125, 539, 320, 2368, 49407]], dtype=np.int64)
    with torch.inference_mode():
        img_ref = model.get_image_features(pixel_values=torch.from_numpy(pixels)).numpy()
        txt_ref = model.get_text_features(input_ids=torch.from_numpy(ids)).numpy()
    vis = ort.InferenceSession(str(exported_tiny.folder / "vision.fp32.onnx"))
    txt = ort.InferenceSession(str(exported_tiny.folder / "text.fp32.onnx"))
    img = vis.run(None, {"pixel_values": pixels})[0]
    emb = txt.run(None, {"input_ids": ids})[0]
    np.testing.assert_allclose(img, img_ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(emb, txt_ref, atol=1e-4, rtol=1e-4)
    assert not np.allclose(np.linalg.norm(img, axis=-1), 1.0)
