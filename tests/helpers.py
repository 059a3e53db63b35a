"""Plain helpers shared by test modules (fixtures live in the conftest.py files; what
a test imports lives here, never in a conftest)."""

from __future__ import annotations

from pathlib import Path


def leftovers(parent: Path) -> list[str]:
    """Hidden staging entries the exporter may have left in `parent`."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".cliprt-"))
