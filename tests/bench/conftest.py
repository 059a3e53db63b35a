"""Fixtures of the bench tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bench_extra() -> None:
    """Skips a test that writes a bench report where the `bench` extra is not installed
    (matplotlib draws bench.png); the harness itself needs only the runtime."""
    pytest.importorskip("matplotlib", reason="needs the bench extra (matplotlib draws bench.png)")
