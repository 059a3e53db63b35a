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
