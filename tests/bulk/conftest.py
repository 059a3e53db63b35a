"""Fixtures of the bulk tests: the shipped shapes model and folders of real image files,
some of them corrupt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image


def write_images(
    folder: Path, n: int, *, seed: int = 0, size: tuple[int, int] = (48, 40)
) -> list[Path]:
    """n small real PNG/JPEG files of random pixels under `folder` (two subfolders)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, size=(size[1], size[0] + i % 7, 3), dtype=np.uint8)
        path = sub / f"img{i:04d}.{'jpg' if i % 3 == 0 else 'png'}"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return sorted(paths)


def corrupt(path: Path) -> Path:
    """Truncates an image file to a few bytes: PIL cannot decode it."""
    path.write_bytes(path.read_bytes()[:20])
    return path


@pytest.fixture(scope="session")
def shapes32() -> Any:
    """The shipped shapes model in fp32 on the CPU (2 threads, no spinning: a shared box)."""
    import cliprt

    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=2, spinning=False)
    yield model
    model.close()


@pytest.fixture
def mixed_dir(tmp_path: Path) -> tuple[Path, list[Path], list[Path]]:
    """A folder of 12 images, 2 of them corrupt, plus an empty .jpg: (folder, good, bad)."""
    folder = tmp_path / "photos"
    paths = write_images(folder, 12)
    bad = [corrupt(paths[3]), corrupt(paths[8])]
    empty = folder / "b" / "empty.jpg"
    empty.write_bytes(b"")
    bad.append(empty)
    good = [p for p in paths if p not in bad]
    return folder, good, sorted(bad)
