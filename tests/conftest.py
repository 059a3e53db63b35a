"""Session-scoped real fixtures: the real CLIP tokenizer and small real CLIP checkpoints,
all built locally (no hub is reachable where cliprt is tested)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


def _needs_export_extra() -> None:
    pytest.importorskip("torch", reason="needs the export extra (torch)")
    pytest.importorskip("transformers", reason="needs the export extra (transformers)")


@pytest.fixture(scope="session")
def clip_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HF CLIP tokenizer folder (vocab.json, merges.txt, tokenizer.json) rebuilt from
    OpenAI's BPE vocabulary."""
    _needs_export_extra()
    from cliprt.export.clip_vocab import save_clip_tokenizer

    folder = tmp_path_factory.mktemp("clip-tokenizer")
    save_clip_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight CLIP (2 layers, width 32, 224 px, patch 32) saved as a real HF
    checkpoint folder: config, safetensors, tokenizer files, preprocessor_config.json."""
    _needs_export_extra()
    from cliprt.export.random_checkpoints import build_random_checkpoint

    return build_random_checkpoint("tiny", tmp_path_factory.mktemp("tiny-clip"), seed=0)


@dataclass(frozen=True)
class Exported:
    """A model folder exported in the test session, with the exporter's progress lines."""

    folder: Path
    progress: list[str]


@pytest.fixture(scope="session")
def exported_tiny(tiny_clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """tiny_clip_dir exported once per session by cliprt.export (fp32, fp16, int8); the
    export, runtime and bench tests all use this one folder."""
    pytest.importorskip("optimum.exporters.onnx", reason="needs the export extra (optimum-onnx)")
    from cliprt.export import export_model

    lines: list[str] = []
    out = tmp_path_factory.mktemp("exported") / "tiny-model"
    folder = export_model(str(tiny_clip_dir), out, progress=lines.append)
    return Exported(folder=folder, progress=lines)


@pytest.fixture(scope="session")
def tiny_model_dir(exported_tiny: Exported) -> Path:
    """The folder of exported_tiny; its manifest's source is tiny_clip_dir, so the bench
    finds its PyTorch reference there."""
    return exported_tiny.folder


@pytest.fixture(scope="session", autouse=True)
def _verified_files_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The runtime's verified-file cache (cliprt.verified_files) goes to a session folder,
    never to the user's ~/.cache."""
    import os

    os.environ["CLIPRT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cliprt-cache"))
