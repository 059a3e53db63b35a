"""Session fixtures of the runtime tests: one model folder exported from the tiny random
CLIP (all three precisions), the PyTorch reference model, and loaded runtimes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint exported once by cliprt.export (fp32, fp16, int8)."""
    from cliprt.export import export_model

    out = tmp_path_factory.mktemp("tiny-model") / "model"
    return export_model(str(tiny_clip_dir), out)


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
