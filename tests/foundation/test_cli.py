"""`cliprt --help` works and lists only commands that are registered."""

from __future__ import annotations

import subprocess
import sys


def test_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cliprt.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: cliprt" in out.stdout


def test_version() -> None:
    import cliprt

    out = subprocess.run(
        [sys.executable, "-m", "cliprt.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert cliprt.__version__ in out.stdout
