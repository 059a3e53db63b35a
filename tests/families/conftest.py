"""Session fixtures of the family tests: small random checkpoints of each family (real
layouts, narrow widths, two layers), built in the test session, and their exports."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def family_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """build(arch) -> a random checkpoint folder of that arch (cached per session)."""
    pytest.importorskip("torch", reason="building checkpoints needs the export extra")
    from cliprt.export.random_checkpoints import build_random_checkpoint

    root = tmp_path_factory.mktemp("family-checkpoints")
    cache: dict[str, Path] = {}

    def build(arch: str) -> Path:
        if arch not in cache:
            cache[arch] = build_random_checkpoint(arch, root / arch, seed=0)
        return cache[arch]

    return build


@pytest.fixture(scope="session")
def family_export(family_checkpoint, tmp_path_factory: pytest.TempPathFactory):
    """export(arch, precisions=...) -> an exported model folder (cached per session)."""
    from cliprt.export import export_model

    root = tmp_path_factory.mktemp("family-exports")
    cache: dict[tuple[str, str], Path] = {}

    def export(arch: str, precisions: str = "fp32,int8") -> Path:
        key = (arch, precisions)
        if key not in cache:
            out = root / f"{arch}-{precisions.replace(',', '-')}"
            cache[key] = export_model(str(family_checkpoint(arch)), out, precisions=precisions)
        return cache[key]

    return export


def odd_images():
    """Images of odd aspect ratios and sizes (RGB), as PIL images."""
    import numpy as np
    from PIL import Image

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
