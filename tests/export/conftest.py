"""Shared export fixtures: the tiny CLIP exported once per session, all three variants."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Exported:
    folder: Path
    progress: list[str]


@pytest.fixture(scope="session")
def exported_tiny(tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """tiny_clip_dir exported to a model folder with fp32, fp16 and int8 variants."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("optimum.exporters.onnx")
    from cliprt.export import export_model

    lines: list[str] = []
    out = tmp_path_factory.mktemp("exported") / "tiny-model"
    folder = export_model(str(tiny_clip_dir), out, progress=lines.append)
    return Exported(folder=folder, progress=lines)


def leftovers(parent: Path) -> list[str]:
    """Hidden staging entries the exporter may have left in `parent`."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".cliprt-"))
