"""The inputs both sides get: deterministic photo-like JPEG files and prompts of an exact
token length.

Identical inputs are half of fairness: every image and text timed on the engine is timed
on the reference too, and parity is measured on these same inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cliprt.errors import InputError

# Typical camera / web sizes, portrait and landscape, so resize and crop do real work.
_SIZES = ((640, 480), (480, 640), (500, 375), (800, 800), (1024, 768), (375, 500))

# Common English words, each one BPE token in CLIP's vocabulary.
_PHRASE = (
    "photo of a small red cat sitting on the green grass near an old blue car with "
    "two dogs and one big white house under the dark sky in winter while people walk"
)
_WORDS = tuple(_PHRASE.split())


@dataclass(frozen=True)
class BenchInputs:
    """Images (as files and decoded), and texts of exactly `seq_len` tokens."""

    image_files: tuple[Path, ...]
    images: tuple[Image.Image, ...]
    texts: tuple[str, ...]
    seq_len: int

    def image_batch(self, n: int) -> list[Image.Image]:
        return list(self.images[:n])

    def file_batch(self, n: int) -> list[Path]:
        return list(self.image_files[:n])

    def text_batch(self, n: int) -> list[str]:
        return list(self.texts[:n])


def _photo(i: int, size: tuple[int, int]) -> Image.Image:
    # Smooth gradients, a few shapes and sensor-like noise: JPEG decodes like a photo,
    # not like flat colour, and every image differs.
    rng = np.random.default_rng(1000 + i)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            127 + 100 * np.sin(x / (17 + 3 * i) + i),
            127 + 100 * np.cos(y / (23 + 2 * i) - i),
            127 + 100 * np.sin((x + y) / (31 + i)),
        ],
        axis=-1,
    )
    for _ in range(4):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(20, max(21, h // 3))
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        base[mask] = rng.integers(0, 256, size=3)
    base += rng.normal(0, 8, size=base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), mode="RGB")


def make_images(n: int, folder: Path) -> tuple[tuple[Path, ...], tuple[Image.Image, ...]]:
    """Writes `n` deterministic JPEG photos (quality 90) into `folder` and decodes them back.

    Returns:
        (files, decoded RGB images), in the same order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files, images = [], []
    for i in range(n):
        path = folder / f"image_{i:03d}.jpg"
        _photo(i, _SIZES[i % len(_SIZES)]).save(path, format="JPEG", quality=90)
        files.append(path)
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    return tuple(files), tuple(images)


def make_texts(n: int, seq_len: int, count_tokens: Callable[[str], int]) -> tuple[str, ...]:
    """`n` different prompts that each tokenize to exactly `seq_len` tokens (BOS and EOS
    included), so both sides run the text tower on the same [batch, seq_len] shape.

    Args:
        count_tokens: the token count of a text, BOS and EOS included, untruncated.

    Raises:
        InputError: seq_len below 3 (BOS, one word, EOS).
    """
    if seq_len < 3:
        raise InputError(f"--seq-len must be >= 3 (BOS + a word + EOS), got {seq_len}")
    texts = []
    for i in range(n):
        words = ["a"]
        j = i
        while count_tokens(" ".join(words)) < seq_len:
            words.append(_WORDS[j % len(_WORDS)])
            j += 1
            if count_tokens(" ".join(words)) > seq_len:
                words[-1] = "a"  # "a" is one token: fills the last slot exactly
        text = " ".join(words)
        got = count_tokens(text)
        if got != seq_len:
            raise InputError(f"could not build a prompt of {seq_len} tokens (got {got})")
        texts.append(text)
    return tuple(texts)


def token_counter(tokenizer_json: Path) -> Callable[[str], int]:
    """A token counter from a model folder's tokenizer.json (no truncation, no padding)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    return lambda text: len(tok.encode(text).ids)


def make_inputs(
    folder: Path, *, n: int, seq_len: int, count_tokens: Callable[[str], int]
) -> BenchInputs:
    """Images and texts for a run whose largest batch is `n`."""
    files, images = make_images(n, folder)
    return BenchInputs(
        image_files=files,
        images=images,
        texts=make_texts(n, seq_len, count_tokens),
        seq_len=seq_len,
    )
