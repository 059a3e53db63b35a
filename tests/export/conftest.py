"""Helpers of the export tests (the exported tiny model itself is tests/conftest.py's
exported_tiny)."""

from __future__ import annotations

from pathlib import Path


def leftovers(parent: Path) -> list[str]:
    """Hidden staging entries the exporter may have left in `parent`."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".cliprt-"))
