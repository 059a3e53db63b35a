"""The shipped `shapes` model through the torch-free runtime: it loads by name and keeps
the accuracy its packaging run measured (training/shapes_figures.json, written by
training/package_shapes.py), within MARGIN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cliprt
from cliprt.runtime import shipped_models
from training import evaluate

FIGURES = Path(__file__).resolve().parents[2] / "training" / "shapes_figures.json"
# Allowed shortfall (fractions) against the recorded figures: onnxruntime's kernels (int8
# above all) differ a little across CPUs (VNNI or not) and versions. 0.02 is 8 of the 400
# zero-shot images and ~10 of the 480 retrieval queries.
MARGIN = 0.02
METRICS = ("zero_shot_heldout", "zero_shot_seen", "recall@1", "recall@5")


def _recorded(backend: str) -> dict[str, float]:
    return json.loads(FIGURES.read_text())["accuracy"][backend]


def test_shapes_is_a_shipped_model() -> None:
    assert "shapes" in shipped_models()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_shipped_model_keeps_its_recorded_accuracy(precision: str) -> None:
    model = cliprt.load("shapes", precision=precision, device="cpu", threads=2)
    assert model.precision == precision
    measured = evaluate.evaluate(model.encode_images, model.encode_texts)
    recorded = _recorded(f"cliprt ORT {precision}")
    for metric in METRICS:
        assert measured[metric] >= recorded[metric] - MARGIN, (metric, measured, recorded)


def test_int8_is_within_one_point_of_fp32_in_the_record() -> None:
    fp32, int8 = _recorded("cliprt ORT fp32"), _recorded("cliprt ORT int8")
    assert abs(fp32["zero_shot_heldout"] - int8["zero_shot_heldout"]) <= 0.01 + 1e-9


def test_classify_names_a_held_out_combination_it_never_saw() -> None:
    from cliprt import shapes

    rng = np.random.default_rng(0)
    spec = shapes.sample_spec(rng, colour="red", shape="circle", size="large")
    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=2)
    labels = shapes.label_prompts()
    probs = model.classify([shapes.render(spec)], labels)
    assert probs.shape == (1, 48)
    assert np.isclose(probs.sum(), 1.0, atol=1e-5)
    assert labels[int(probs.argmax())] == "a photo of a red circle"


def test_shipped_checkpoint_matches_the_exported_fp32_folder() -> None:
    pytest.importorskip("torch", reason="needs the export extra (torch)")
    pytest.importorskip("transformers", reason="needs the export extra (transformers)")
    from cliprt.demo import SHIPPED_CHECKPOINT, shipped_path
    from cliprt.shapes import generate

    images, specs = generate(8, seed=42)
    texts = [s.caption(0) for s in specs]
    ref_img, ref_txt = evaluate.pytorch_encoders(shipped_path(SHIPPED_CHECKPOINT), threads=2)
    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=2)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    np.testing.assert_allclose(model.encode_images(images), unit(ref_img(images)), atol=1e-4)
    np.testing.assert_allclose(model.encode_texts(texts), unit(ref_txt(texts)), atol=1e-4)
