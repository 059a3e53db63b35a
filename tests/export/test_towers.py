"""Behaviour of the exported towers: text padding independence, fp16 on extremes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _session(folder: Path, name: str):
    import onnxruntime as ort

    return ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def tokenizer(tiny_clip_dir: Path):
    from transformers import CLIPTokenizerFast

    return CLIPTokenizerFast.from_pretrained(str(tiny_clip_dir))


def _embed(session, tokenizer, texts, **kw):
    ids = tokenizer(texts, return_tensors="np", **kw)["input_ids"].astype(np.int64)
    return ids, session.run(None, {"input_ids": ids})[0]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_text_embedding_does_not_depend_on_padding(exported_tiny, tokenizer, precision) -> None:
    s = _session(exported_tiny.folder, f"text.{precision}.onnx")
    prompt = "a photo of a cat"
    ids_alone, alone = _embed(s, tokenizer, [prompt])
    ids_b, batch = _embed(s, tokenizer, [prompt, "x " * 30, "dog"], padding=True)
    ids_77, full = _embed(s, tokenizer, [prompt], padding="max_length", max_length=77)
    assert ids_alone.shape[1] < ids_b.shape[1] < ids_77.shape[1] == 77
    # The pad id is EOS: the tower pools at the FIRST one.
    assert (ids_77[0, ids_alone.shape[1] :] == 49407).all()
    atol = 1e-5 if precision == "fp32" else 2e-3
    np.testing.assert_allclose(batch[0], alone[0], atol=atol)
    np.testing.assert_allclose(full[0], alone[0], atol=atol)
    # "dog" is shorter than the batch; its row must match its own unpadded run.
    _, dog = _embed(s, tokenizer, ["dog"])
    np.testing.assert_allclose(batch[2], dog[0], atol=atol)


def test_int8_text_does_not_depend_on_its_batch_mates(exported_tiny, tokenizer) -> None:
    # The static formulation fixes every activation scale at export: other prompts of
    # the batch leave an embedding bit for bit unchanged; padding changes it only
    # through the fp32 attention, as in the fp32 tower.
    s = _session(exported_tiny.folder, "text.int8.onnx")
    prompt = "a photo of a cat"
    kw = {"padding": "max_length", "max_length": 40, "truncation": True}
    _, padded = _embed(s, tokenizer, [prompt], **kw)
    _, batch = _embed(s, tokenizer, [prompt, "x " * 30, "dog"], **kw)
    np.testing.assert_array_equal(batch[0], padded[0])
    _, alone = _embed(s, tokenizer, [prompt])
    assert _cos(padded, alone).min() >= 0.999


def test_int8_image_does_not_depend_on_its_batch_mates(exported_tiny) -> None:
    # Static int8: an image's embedding is bit for bit the same alone, first or last
    # among mates, and among mates far outside the calibration range (whose values
    # would move a per-batch scale).
    s = _session(exported_tiny.folder, "vision.int8.onnx")
    rng = np.random.default_rng(4)
    item = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    mates = rng.standard_normal((4, 3, 224, 224)).astype(np.float32)
    mates[0] *= 8.0
    mates[1] = -3.0
    (alone,) = s.run(None, {"pixel_values": item})
    for batch, row in ((np.concatenate([item, mates]), 0), (np.concatenate([mates, item]), 4)):
        (out,) = s.run(None, {"pixel_values": batch})
        np.testing.assert_array_equal(out[row], alone[0])
    (ref,) = _session(exported_tiny.folder, "vision.fp32.onnx").run(None, {"pixel_values": item})
    assert _cos(alone, ref).min() >= 0.99


def test_text_pools_at_the_first_eos_not_the_largest_id(exported_tiny) -> None:
    # ids after the first EOS (a pad other than EOS, or anything) must not matter.
    s = _session(exported_tiny.folder, "text.fp32.onnx")
    base = np.array([[49406, 320, 2368, 49407]], dtype=np.int64)
    tails = np.array([[49406, 320, 2368, 49407, 0, 0, 5000, 49407]], dtype=np.int64)
    a, b = (s.run(None, {"input_ids": x})[0] for x in (base, tails))
    np.testing.assert_allclose(a, b, atol=1e-5)


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def test_fp16_finite_on_extreme_images(exported_tiny) -> None:
    from transformers import CLIPImageProcessor

    from cliprt.export.validate import probe_images

    folder = exported_tiny.folder
    proc = CLIPImageProcessor.from_pretrained(str(folder))
    pixels = proc(images=probe_images(224)[:3], return_tensors="np")["pixel_values"]
    rng = np.random.default_rng(0)
    extremes = np.stack(
        [
            np.full((3, 224, 224), -10.0),  # far beyond the normalised black
            np.full((3, 224, 224), 10.0),
            rng.standard_normal((3, 224, 224)) * 5,
        ]
    )
    x = np.concatenate([pixels, extremes]).astype(np.float32)
    got = _session(folder, "vision.fp16.onnx").run(None, {"pixel_values": x})[0]
    ref = _session(folder, "vision.fp32.onnx").run(None, {"pixel_values": x})[0]
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert _cos(got, ref).min() >= 0.999


def test_fp16_finite_on_long_texts(exported_tiny, tokenizer) -> None:
    folder = exported_tiny.folder
    texts = ["word " * 200, "a", "", "café 東京 🙂 " * 30]
    ids = tokenizer(
        texts, padding="max_length", truncation=True, max_length=77, return_tensors="np"
    )
    x = ids["input_ids"].astype(np.int64)
    assert x.shape == (4, 77) and x[0, -1] == 49407
    got = _session(folder, "text.fp16.onnx").run(None, {"input_ids": x})[0]
    ref = _session(folder, "text.fp32.onnx").run(None, {"input_ids": x})[0]
    assert np.isfinite(got).all()
    assert _cos(got, ref).min() >= 0.999


@pytest.mark.parametrize("batch", [1, 5])
def test_dynamic_batch(exported_tiny, batch) -> None:
    x = np.zeros((batch, 3, 224, 224), dtype=np.float32)
    for precision in ("fp32", "int8"):
        out = _session(exported_tiny.folder, f"vision.{precision}.onnx").run(
            None, {"pixel_values": x}
        )[0]
        assert out.shape == (batch, 16)
