"""Fixtures of the torch-free runtime tests: the shipped `shapes` model folder, loaded by
name. Nothing here (nor in this folder's tests) imports torch, transformers, onnx or
optimum, so `pip install . pytest && python -m pytest tests/shipped` tests the runtime
on a runtime-only install."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import cliprt
from cliprt.runtime import ClipModel


def _load(precision: str) -> ClipModel:
    # 2 threads, no spinning: a shared box.
    return cliprt.load("shapes", precision=precision, device="cpu", threads=2, spinning=False)


@pytest.fixture(scope="session")
def shapes32() -> Iterator[ClipModel]:
    """The shipped `shapes` model in fp32 on the CPU."""
    model = _load("fp32")
    yield model
    model.close()


@pytest.fixture(scope="session")
def shapes_int8() -> Iterator[ClipModel]:
    """The shipped `shapes` model in int8 on the CPU."""
    model = _load("int8")
    yield model
    model.close()
