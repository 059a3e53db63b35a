"""cliprt type-checks with mypy (config: pyproject.toml [tool.mypy]; every def typed in
cliprt.runtime and cliprt.export), over the package as it installs: pyproject's
wheel.packages mapping is laid out as symlinks (cliprt/, cliprt/export, ...), the
layout an installed cliprt has, so `mypy -p cliprt` sees what users import."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _wheel_packages() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages: dict[str, str] = config["tool"]["scikit-build"]["wheel"]["packages"]
    return packages


def _lay_out(root: Path) -> None:
    """Symlinks the source folders into the installed layout under `root`."""
    packages = sorted(_wheel_packages().items(), key=lambda kv: kv[0].count("/"))
    for target, source in packages:
        dest = root / target
        dest.mkdir(parents=True, exist_ok=True)
        for entry in (REPO / source).iterdir():
            if entry.name != "__pycache__" and not (dest / entry.name).exists():
                (dest / entry.name).symlink_to(entry)


@pytest.mark.slow
def test_mypy_is_clean(tmp_path: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip(f"mypy is not installed for {sys.executable} (it is in the test extra)")
    _lay_out(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "-p",
            "cliprt",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
