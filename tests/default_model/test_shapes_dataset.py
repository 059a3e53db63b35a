"""The Shapes generator: deterministic pixels, a clean held-out split, honest captions."""

from __future__ import annotations

import numpy as np
import pytest

from cliprt import InputError, shapes


def _pixels(images: list) -> np.ndarray:
    return np.stack([np.asarray(im) for im in images])


def test_same_seed_same_pixels() -> None:
    a, specs_a = shapes.generate(24, seed=5)
    b, specs_b = shapes.generate(24, seed=5)
    assert specs_a == specs_b
    assert np.array_equal(_pixels(a), _pixels(b))


def test_other_seed_other_pixels() -> None:
    a, _ = shapes.generate(8, seed=5)
    b, _ = shapes.generate(8, seed=6)
    assert not np.array_equal(_pixels(a), _pixels(b))


def test_render_is_a_pure_function_of_the_spec() -> None:
    spec = shapes.sample_specs(1, seed=3)[0]
    for size in (64, 96):
        assert np.array_equal(
            np.asarray(shapes.render(spec, size)), np.asarray(shapes.render(spec, size))
        )
    assert shapes.render(spec, 96).size == (96, 96)


def test_images_are_64px_rgb_with_the_shape_drawn_in_its_colour() -> None:
    images, specs = shapes.generate(16, seed=0)
    for im, spec in zip(images, specs, strict=True):
        px = np.asarray(im)
        assert px.shape == (64, 64, 3) and px.dtype == np.uint8
        assert (px == np.array(spec.rgb, np.uint8)).all(axis=2).sum() > 20


def test_train_split_never_draws_held_out_combos() -> None:
    specs = shapes.sample_specs(2000, seed=1, split="train")
    drawn = {(s.colour, s.shape) for s in specs}
    assert drawn == set(shapes.TRAIN_COMBOS)
    assert not drawn & set(shapes.HELD_OUT)
    assert len(shapes.HELD_OUT) == 8 and len(shapes.ALL_COMBOS) == 48


def test_held_out_split_draws_only_held_out_combos() -> None:
    specs = shapes.sample_specs(80, seed=2, split="heldout")
    assert {(s.colour, s.shape) for s in specs} == set(shapes.HELD_OUT)


def test_captions_and_labels_say_what_is_drawn() -> None:
    spec = shapes.sample_spec(np.random.default_rng(0), colour="orange", shape="star", size="small")
    assert spec.caption(0) == "a photo of a small orange star"
    assert spec.label() == "a photo of an orange star"
    assert spec.label() in shapes.label_prompts()


def test_gallery_holds_each_size_colour_shape_once() -> None:
    images, specs = shapes.gallery(seed=0)
    assert len(images) == 96
    assert len({(s.size, s.colour, s.shape) for s in specs}) == 96


def test_unknown_names_are_input_errors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="unknown colour 'teal'"):
        shapes.sample_spec(rng, colour="teal", shape="star")
    with pytest.raises(InputError, match="unknown split"):
        shapes.sample_specs(3, seed=0, split="test")  # type: ignore[arg-type]
