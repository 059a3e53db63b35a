"""The shipped `shapes` model through the torch-free runtime: it loads by name, embeds
every kind of input the same way, classifies and searches what it was trained on, and
its variants agree."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import cliprt
from cliprt import shapes
from cliprt.errors import InputError
from cliprt.runtime import ClipModel, shipped_models


def test_shapes_is_a_shipped_model() -> None:
    assert "shapes" in shipped_models()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_every_precision_loads_by_name_and_gives_unit_rows(precision: str) -> None:
    with cliprt.load("shapes", precision=precision, device="cpu", threads=1) as model:
        assert model.precision == precision
        images, specs = shapes.generate(3, seed=5)
        img = model.encode_images(images)
        txt = model.encode_texts([s.caption(0) for s in specs])
    assert img.dtype == txt.dtype == np.float32
    assert img.shape[0] == txt.shape[0] == 3 and img.shape[1] == txt.shape[1]
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)


def test_every_input_kind_gives_the_same_embedding(shapes32: ClipModel, tmp_path: Path) -> None:
    (image,), _ = shapes.generate(1, seed=9)
    path = tmp_path / "shape.png"
    image.save(path)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    inputs = [
        image,
        np.asarray(image),
        path,
        str(path),
        path.read_bytes(),
        io.BytesIO(buf.getvalue()),
    ]
    rows = shapes32.encode_images(inputs)
    np.testing.assert_allclose(rows, np.repeat(rows[:1], len(inputs), axis=0), atol=1e-6)


def test_batching_does_not_change_results(shapes32: ClipModel) -> None:
    images, specs = shapes.generate(7, seed=13)
    texts = [s.caption(i % 3) for i, s in enumerate(specs)]
    whole = shapes32.encode_images(images)
    np.testing.assert_allclose(shapes32.encode_images(images, batch_size=2), whole, atol=1e-5)
    # Texts pad to the longest prompt of a batch; one by one they are not padded at all.
    alone = np.concatenate([shapes32.encode_texts([t]) for t in texts])
    np.testing.assert_allclose(shapes32.encode_texts(texts), alone, atol=1e-5)


def test_classify_names_a_held_out_combination_it_never_saw(shapes32: ClipModel) -> None:
    spec = shapes.sample_spec(np.random.default_rng(0), colour="red", shape="circle", size="large")
    labels = shapes.label_prompts()
    probs = shapes32.classify([shapes.render(spec)], labels)
    assert probs.shape == (1, len(labels))
    assert np.isclose(probs.sum(), 1.0, atol=1e-5)
    assert labels[int(probs.argmax())] == "a photo of a red circle"


def test_text_search_finds_the_image_it_describes(shapes32: ClipModel) -> None:
    gallery, specs = shapes.generate(48, seed=21, split="all")
    index = shapes32.build_index(gallery)
    assert len(index) == 48
    queries = [f"a photo of a {s.size} {s.colour} {s.shape}" for s in specs[:8]]
    _, ids = shapes32.search(index, texts=queries, k=5)
    hits = sum(
        any((specs[j].colour, specs[j].shape) == (s.colour, s.shape) for j in row)
        for s, row in zip(specs[:8], ids, strict=True)
    )
    assert hits >= 7, ids


def test_int8_tracks_fp32(shapes32: ClipModel, shapes_int8: ClipModel) -> None:
    images, specs = shapes.generate(16, seed=17)
    texts = [s.caption(1) for s in specs]
    for a, b in (
        (shapes32.encode_images(images), shapes_int8.encode_images(images)),
        (shapes32.encode_texts(texts), shapes_int8.encode_texts(texts)),
    ):
        assert np.min(np.sum(a * b, axis=1)) > 0.99


def test_bad_inputs_are_typed_and_name_the_item(shapes32: ClipModel, tmp_path: Path) -> None:
    (image,), _ = shapes.generate(1, seed=1)
    with pytest.raises(InputError, match=r"image 1 .*no such file"):
        shapes32.encode_images([image, tmp_path / "missing.png"])
    with pytest.raises(InputError):
        shapes32.encode_texts([])
