"""`cliprt export` end to end, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cliprt.cli import main
from cliprt.manifest import read_manifest
from tests.helpers import leftovers


def _cliprt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cliprt.cli", "export", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_export_end_to_end(tiny_clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    r = _cliprt(str(tiny_clip_dir), str(out), "--precision", "fp32,int8", "--int8-keep-projection")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out.absolute())
    for stage in ("load checkpoint:", "vision: optimize:", "validate int8:", "publish:"):
        assert f"cliprt export: {stage}" in r.stderr
    m = read_manifest(out)
    assert m.precisions("vision") == ("fp32", "int8")
    assert m.export["int8"]["keep_projection"] is True


@pytest.mark.slow
def test_failed_gate_exits_non_zero(tiny_clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    r = _cliprt(
        str(tiny_clip_dir), str(out), "--precision", "fp32", "--gate", "fp32.max_abs_diff=0"
    )
    assert r.returncode == 1
    assert "cliprt export: error:" in r.stderr and "max abs diff" in r.stderr
    assert "gates overridden" in r.stderr  # never silently
    assert not out.exists() and leftovers(tmp_path) == []


def test_user_errors_exit_1_with_message(tiny_clip_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(tiny_clip_dir), str(tmp_path / "o"), "--precision", "int4"]) == 1
    assert "unknown precision 'int4'; known: fp32, fp16, int8" in capsys.readouterr().err
    assert main(["export", str(tiny_clip_dir), str(tmp_path / "o"), "--gate", "int8"]) == 1
    assert "PRECISION.METRIC=VALUE" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    assert main(["export", str(tiny_clip_dir), str(tmp_path / "taken")]) == 1
    assert "--force" in capsys.readouterr().err
