"""Session fixtures of the runtime tests: the PyTorch reference model and loaded runtimes
(the exported tiny model folder is tests/conftest.py's tiny_model_dir)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def model32(tiny_model_dir: Path) -> Any:
    """The tiny model loaded in fp32 on the CPU (2 threads, no spinning: a shared box)."""
    import cliprt

    model = cliprt.load(tiny_model_dir, precision="fp32", device="cpu", threads=2, spinning=False)
    yield model
    model.close()


@pytest.fixture(scope="session")
def torch_clip(tiny_clip_dir: Path) -> Any:
    """The PyTorch reference: transformers' CLIPModel of the same checkpoint."""
    pytest.importorskip("torch")
    from transformers import CLIPModel

    return CLIPModel.from_pretrained(str(tiny_clip_dir), attn_implementation="eager").eval()
