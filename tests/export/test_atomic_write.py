"""The model folder appears whole or not at all: gates, crashes, --force."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cliprt.errors import ExportError, ParityError
from cliprt.export import export_model
from cliprt.manifest import read_manifest
from tests.helpers import leftovers

# Each test runs whole exports of the tiny checkpoint.
pytestmark = pytest.mark.slow


def test_failed_gate_raises_with_figures_and_writes_nothing(
    tiny_clip_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    with pytest.raises(ParityError) as info:
        export_model(str(tiny_clip_dir), out, precisions="fp32", gates={"fp32.min_cosine": 1.5})
    message = str(info.value)
    assert "vision fp32: min cosine" in message and "< 1.5" in message
    assert "text fp32" in message
    assert not out.exists()
    assert leftovers(tmp_path) == []


class _Crash(Exception):
    pass


@pytest.mark.parametrize("exc", [_Crash, KeyboardInterrupt])
def test_crash_mid_export_leaves_nothing(tiny_clip_dir: Path, tmp_path: Path, exc) -> None:
    out = tmp_path / "model"

    def progress(line: str) -> None:
        if line.startswith("text: optimize"):  # the vision tower is already written
            raise exc("simulated crash")

    with pytest.raises(exc):
        export_model(str(tiny_clip_dir), out, precisions="fp32", progress=progress)
    assert not out.exists()
    assert leftovers(tmp_path) == []


def _previous_model(out: Path) -> Path:
    """A real model folder (the shipped one, copied) marked with old.txt: --force replaces
    only model folders."""
    from cliprt.shipped import shipped_folder

    shutil.copytree(shipped_folder("shapes"), out)
    (out / "old.txt").write_text("previous model")
    return out


def test_existing_out_is_refused_without_force_and_replaced_with_it(
    tiny_clip_dir: Path, tmp_path: Path
) -> None:
    out = _previous_model(tmp_path / "model")
    with pytest.raises(ExportError, match=r"already exists.*--force"):
        export_model(str(tiny_clip_dir), out, precisions="fp32")
    assert (out / "old.txt").read_text() == "previous model"

    export_model(str(tiny_clip_dir), out, precisions="fp32", force=True)
    assert not (out / "old.txt").exists()
    m = read_manifest(out)
    assert m.precisions("vision") == ("fp32",) and m.precisions("text") == ("fp32",)
    assert m.export["fp16"] is None and m.export["int8"] is None
    assert leftovers(tmp_path) == []


def test_failed_forced_export_keeps_the_old_folder(tiny_clip_dir: Path, tmp_path: Path) -> None:
    out = _previous_model(tmp_path / "model")
    with pytest.raises(ParityError):
        export_model(
            str(tiny_clip_dir), out, precisions="fp32", force=True, gates={"fp32.max_abs_diff": -1}
        )
    assert (out / "old.txt").read_text() == "previous model"
    assert leftovers(tmp_path) == []
