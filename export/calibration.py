"""Calibration inputs for static int8: real-looking images and real CLIP-BPE captions.

Static quantization fixes each activation's scale at export, from the ranges these
inputs produce; random noise gives ranges unlike a photo's. The images are photo-like
(smooth gradients, shapes, sensor noise, camera sizes) and shapes renders; the texts are
captions of the kind CLIP is prompted with. Everything is seeded: the same export gives
the same scales. Disjoint from the parity probes (validate.py) and the bench's inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SIZES = ((640, 480), (480, 640), (500, 375), (800, 800), (1024, 768), (375, 500))
_WORDS = [
    "photo",
    "of",
    "a",
    "small",
    "red",
    "cat",
    "sitting",
    "on",
    "the",
    "green",
    "grass",
    "near",
    "an",
    "old",
    "blue",
    "car",
    "with",
    "two",
    "dogs",
    "and",
    "one",
    "big",
    "white",
    "house",
    "under",
    "the",
    "dark",
    "sky",
    "in",
    "winter",
    "while",
    "people",
    "walk",
    "a",
    "painting",
    "drawing",
    "close",
    "up",
    "of",
    "street",
    "city",
    "beach",
    "mountain",
    "forest",
    "night",
    "bright",
    "food",
    "table",
]
_TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a close-up photo of the {}.",
    "a painting of a {}.",
    "{}",
)


def photo(seed: int, size: tuple[int, int]) -> Any:
    """A photo-like PIL image: smooth gradients, a few discs, sensor-like noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    f = rng.uniform(8, 60, size=3)
    phase = rng.uniform(0, 6.3, size=3)
    base = np.stack(
        [
            127 + 100 * np.sin(x / f[0] + phase[0]),
            127 + 100 * np.cos(y / f[1] - phase[1]),
            127 + 100 * np.sin((x + y) / f[2] + phase[2]),
        ],
        axis=-1,
    )
    for _ in range(int(rng.integers(2, 7))):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(10, max(11, h // 3))
        base[(x - cx) ** 2 + (y - cy) ** 2 < r**2] = rng.integers(0, 256, size=3)
    base += rng.normal(0, 8, size=base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), mode="RGB")


def calibration_images(n: int = 32, *, seed: int = 500) -> list[Any]:
    """`n` PIL images: three quarters photo-like, one quarter shapes renders."""
    from cliprt import shapes

    n_shapes = n // 4
    out = [photo(seed + i, _SIZES[i % len(_SIZES)]) for i in range(n - n_shapes)]
    out += shapes.generate(n_shapes, seed=seed, image_size=224)[0]
    return out


def calibration_texts(n: int = 64, *, seed: int = 11) -> list[str]:
    """`n` captions: shapes captions and prompt-template sentences of varied length."""
    from cliprt import shapes

    rng = np.random.default_rng(seed)
    out = [s.caption(i) for i, s in enumerate(shapes.sample_specs(n // 2, seed=seed))]
    while len(out) < n:
        words = " ".join(rng.choice(_WORDS, size=int(rng.integers(1, 12))))
        out.append(_TEMPLATES[len(out) % len(_TEMPLATES)].format(words))
    return out


def calibration_arrays(processor: Any, tokenizer: Any, context_length: int) -> dict[str, Any]:
    """{"vision": pixel_values float32 [n,3,H,W], "text": input_ids int64 [m,s]} as the
    runtime would feed them (CLIPImageProcessor, CLIPTokenizerFast right-padded)."""
    pixels = processor(images=calibration_images(), return_tensors="np")["pixel_values"]
    ids = tokenizer(
        calibration_texts(),
        padding=True,
        truncation=True,
        max_length=context_length,
        return_tensors="np",
    )["input_ids"]
    return {"vision": pixels.astype(np.float32), "text": ids.astype(np.int64)}


def checkpoint_calibration_arrays(ckpt: Any) -> dict[str, Any]:
    """calibration_arrays through a checkpoint family's own preprocessing and tokenizer
    (export.families.base.Checkpoint), as the runtime feeds that family's towers."""
    pixels = ckpt.pixel_values(calibration_images())
    ids, _ = ckpt.tokenize(calibration_texts())
    return {"vision": np.asarray(pixels, dtype=np.float32), "text": np.asarray(ids, dtype=np.int64)}
