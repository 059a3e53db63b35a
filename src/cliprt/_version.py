"""cliprt's version: pyproject.toml's, the one source, read at run time."""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata
from pathlib import Path

UNKNOWN = "0+unknown"


@cache
def version() -> str:
    """The installed distribution's version (its metadata, written from pyproject.toml),
    else, for a source tree put on sys.path without installing, pyproject.toml's."""
    try:
        return metadata.version("cliprt")
    except metadata.PackageNotFoundError:
        return version_in_pyproject(Path(__file__).resolve().parents[2] / "pyproject.toml")


def version_in_pyproject(path: Path) -> str:
    """The [project] version of the pyproject.toml at `path`, or UNKNOWN where it has
    none (a plain match of the one line: tomllib is Python 3.11+)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return UNKNOWN
    if "[project]" not in text:
        return UNKNOWN
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^version\s*=\s*"([^"]+)"', project, re.MULTILINE)
    return found.group(1) if found else UNKNOWN
