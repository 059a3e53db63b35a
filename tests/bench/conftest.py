"""The tiny CLIP exported once per session for the bench tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_clip_dir exported (fp32, int8) to a cliprt model folder; its manifest's source
    is tiny_clip_dir, so the bench finds its reference there."""
    from cliprt.export import export_model

    return export_model(
        str(tiny_clip_dir),
        tmp_path_factory.mktemp("bench") / "tiny-model",
        precisions=("fp32", "int8"),
    )
