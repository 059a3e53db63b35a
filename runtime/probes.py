"""Device probes: a few inputs made from a recipe, with the PyTorch reference embeddings
the exporter recorded for them in the manifest, so that `cliprt verify` can recompute
them on the machine that runs the model and compare.

The images are not stored: they are drawn by :func:`probe_images` from a recipe name, a
seed and a size, with numpy's PCG64 generator and Pillow's drawing primitives (both
deterministic across platforms for integer coordinates and colours). The exporter feeds
the same PIL images to the Hugging Face image processor and the PyTorch tower; verify
feeds them to the runtime's own preprocessing and tokenizer, so the check covers the
whole path on the device, not only the ONNX graph.

Torch-free: the exporter imports this module, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

RECIPE = "cliprt-probes-v1"
N_IMAGES = 4
TEXTS: tuple[str, ...] = (
    "a photo of a cat",
    "a small red circle on a white background",
    "A DOG, café crème, 東京 🙂",
    " ".join(["a long caption that keeps going"] * 16),  # > 77 tokens: truncated
)


def probe_images(recipe: str, seed: int, size: int) -> list[Image.Image]:
    """The probe images of `recipe` (see the module docstring).

    Raises:
        ValueError: an unknown recipe (the manifest was written by a newer cliprt).
    """
    if recipe != RECIPE:
        raise ValueError(f"unknown probe recipe {recipe!r}; this cliprt knows {RECIPE!r}")
    rng = np.random.default_rng(seed)
    s = int(size)
    ramp = np.linspace(0, 255, s).astype(np.uint8)
    images = [
        # noise, at the tower's size (no resize)
        Image.fromarray(rng.integers(0, 256, (s, s, 3), dtype=np.uint8)),
        # a colour gradient, wider than tall (resize + centre crop)
        Image.fromarray(
            np.stack(
                [
                    np.tile(ramp, (s, 1)),
                    np.tile(ramp[:, None], (1, s)),
                    255 - np.tile(ramp, (s, 1)),
                ],
                -1,
            )
        ).resize((s + s // 2, s), Image.Resampling.NEAREST),
    ]
    # shapes on a plain background, one tall and one small (upscaled)
    for w, h, count in ((s, 2 * s, 6), (s // 2 + 5, s // 3 + 7, 4)):
        bg = tuple(int(c) for c in rng.integers(0, 256, 3))
        img = Image.new("RGB", (w, h), bg)
        draw = ImageDraw.Draw(img)
        for _ in range(count):
            x0, y0 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
            x1, y1 = (
                min(w - 1, x0 + int(rng.integers(1, w))),
                min(h - 1, y0 + int(rng.integers(1, h))),
            )
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            if rng.random() < 0.5:
                draw.ellipse([x0, y0, x1, y1], fill=colour)
            else:
                draw.rectangle([x0, y0, x1, y1], fill=colour, outline=(0, 0, 0))
        images.append(img)
    assert len(images) == N_IMAGES
    return images


@dataclass(frozen=True)
class ProbeRecord:
    """What the manifest's "probes" entry holds: the recipe, the texts, and the PyTorch
    reference embeddings (L2-normalised, float32 values) of both towers."""

    recipe: str
    seed: int
    image_size: int
    texts: tuple[str, ...]
    image_ref: np.ndarray  # float32 (N_IMAGES, D)
    text_ref: np.ndarray  # float32 (len(texts), D)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "seed": self.seed,
            "image_size": self.image_size,
            "texts": list(self.texts),
            # float32 values, written with the 9 significant digits that round-trip them
            "image_ref": [[float(f"{v:.9g}") for v in row] for row in self.image_ref.tolist()],
            "text_ref": [[float(f"{v:.9g}") for v in row] for row in self.text_ref.tolist()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeRecord:
        """Raises KeyError, TypeError or ValueError on a malformed entry."""
        return cls(
            recipe=str(data["recipe"]),
            seed=int(data["seed"]),
            image_size=int(data["image_size"]),
            texts=tuple(str(t) for t in data["texts"]),
            image_ref=np.asarray(data["image_ref"], dtype=np.float32),
            text_ref=np.asarray(data["text_ref"], dtype=np.float32),
        )
