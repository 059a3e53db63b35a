"""One version, pyproject.toml's: the package, its metadata, the compiled extension and
`cliprt --version` all say it."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import cliprt
from cliprt import _topk
from cliprt._version import UNKNOWN, version_in_pyproject

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_every_place_says_pyproject_version() -> None:
    want = version_in_pyproject(PYPROJECT)
    assert want != UNKNOWN
    assert cliprt.__version__ == metadata.version("cliprt") == want
    assert _topk.__version__ == want  # CMake's SKBUILD_PROJECT_VERSION, from pyproject


def test_pyproject_reader(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[build-system]\nversion = "9"\n\n[project]\nname = "cliprt"\nversion = "1.2.3rc1"\n'
        '\n[tool.x]\nversion = "7"\n'
    )
    assert version_in_pyproject(path) == "1.2.3rc1"
    path.write_text('[tool.x]\nversion = "7"\n')
    assert version_in_pyproject(path) == UNKNOWN
    assert version_in_pyproject(tmp_path / "missing.toml") == UNKNOWN
