"""Fixtures of the kernel tests: every ISA this machine has, restored after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cliprt import _topk

ISAS = _topk.available_isas()


@pytest.fixture(params=ISAS)
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Forces one ISA for the test (through the extension's test hook), then restores."""
    before = _topk.current_isa()
    _topk.set_isa(request.param)
    try:
        yield request.param
    finally:
        _topk.set_isa(before)
