"""`cliprt demo` end to end, as a user runs it (a subprocess of the installed command)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_quick_runs_end_to_end(tmp_path: Path) -> None:
    exe = shutil.which("cliprt")
    cmd = [exe] if exe else [sys.executable, "-m", "cliprt.cli"]
    proc = subprocess.run(
        [*cmd, "demo", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for heading in ("1. export", "2. zero-shot classification", "3. image search", "4. bench"):
        assert heading in out
    assert "best label: a photo of a" in out
    assert "query: 'a photo of a large blue square'" in out
    assert "match  search-" in out
    assert "cliprt int8" in out
    assert "interleaved call by call" in out and "usable CPUs" in out
    assert len(list((tmp_path / "images").glob("search-*.png"))) == 50


def test_demo_rejects_bad_threads() -> None:
    exe = shutil.which("cliprt")
    cmd = [exe] if exe else [sys.executable, "-m", "cliprt.cli"]
    proc = subprocess.run(
        [*cmd, "demo", "--threads", "0"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    assert "--threads must be >= 1, got 0" in proc.stderr


@pytest.mark.slow
def test_demo_without_the_export_extra_runs_on_the_shipped_folder(tmp_path: Path) -> None:
    # A runtime-only install: torch, transformers and onnx cannot be imported.
    code = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'onnx', 'optimum'):\n"
        "    sys.modules[m] = None\n"
        "from cliprt.cli import main\n"
        f"sys.exit(main(['demo', '--quick', '--out', {str(tmp_path)!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "cliprt[export]"' in proc.stdout
    assert "PyTorch column skipped" in proc.stdout
    assert "3. image search" in proc.stdout
