"""Inputs the family parity tests share: awkward images and texts (imported by the tests;
fixtures stay in conftest.py)."""

from __future__ import annotations

from PIL import Image


def odd_images() -> list[Image.Image]:
    """Images of odd aspect ratios and sizes (RGB), as PIL images."""
    import numpy as np

    rng = np.random.default_rng(7)
    sizes = [(301, 97), (64, 64), (33, 250), (225, 224), (17, 19), (1000, 3)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


LONG_TEXT = " ".join(["a very long caption that keeps going and going"] * 20)
TEXTS = [
    "a photo of a cat",
    "A PHOTO OF A DOG!!!",
    "Hello, World!!  multiple   spaces",
    "café crème, naïve façade, Zürich 🙂",
    "1 2 3 4 5 6 7 8 9 10",
    LONG_TEXT,
]
