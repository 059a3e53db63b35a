"""Property tests of the index file reader: arbitrary and mutated bytes, and crafted
files whose checksum is right, give an IndexFileError or a correct load; a loaded index
searches without a crash and returns only its own ids (or -1 padding)."""

from __future__ import annotations

import hashlib
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cliprt.errors import IndexFileError
from cliprt.runtime.index import Index
from tests.hardening.support import tally

SURFACE = "Index.load (fuzzed files)"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _valid_bytes(dtype: str) -> bytes:
    index = Index(6, dtype)
    index.add(
        np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32), ids=[7, 3, 9, 0, 4]
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.cix"
        index.save(path)
        return path.read_bytes()


_VALID = {dtype: _valid_bytes(dtype) for dtype in ("fp32", "fp16", "int8")}


def _load_and_use(data: bytes) -> None:
    """Loads `data` as an index file; a successful load must also search sanely."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.cix"
        path.write_bytes(data)
        for mmap in (True, False):
            try:
                index = Index.load(path, mmap=mmap)
            except IndexFileError:
                tally(SURFACE, "typed_error")
                continue
            except Exception:
                tally(SURFACE, "foreign_exception")
                raise
            tally(SURFACE, "ok")
            stored = set(index._ids[: len(index)].tolist())
            assert all(i >= 0 for i in stored)
            q = np.ones((2, index.dim), dtype=np.float32)
            _scores, ids = index.search(q, k=3)
            assert ids.shape == (2, 3)
            assert set(ids.ravel().tolist()) <= stored | {-1}
            del index


@FUZZ
@given(data=st.binary(max_size=600), magic=st.booleans())
def test_arbitrary_bytes(data: bytes, magic: bool) -> None:
    _load_and_use((b"CLIPRTIX" + data) if magic else data)


@FUZZ
@given(
    dtype=st.sampled_from(["fp32", "fp16", "int8"]),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
    extra=st.binary(max_size=70),
)
def test_mutated_valid_files(
    dtype: str, edits: list[tuple[int, int]], cut: int | None, extra: bytes
) -> None:
    data = bytearray(_VALID[dtype])
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _load_and_use(bytes(data) + extra)


@FUZZ
@given(
    version=st.sampled_from([0, 1, 1, 1, 2, 2**32 - 1]),
    code=st.integers(0, 4),
    dim=st.one_of(st.integers(0, 16), st.integers(0, 2**64 - 1)),
    count=st.one_of(st.integers(0, 8), st.integers(0, 2**64 - 1)),
    body=st.binary(max_size=1200),
    exact=st.booleans(),
)
def test_crafted_files_with_a_right_checksum(
    version: int, code: int, dim: int, count: int, body: bytes, exact: bool
) -> None:
    """The checksum passes, so the header and value checks alone decide."""
    if exact and code in (0, 1, 2) and 1 <= dim <= 16 and count <= 8:
        # Size the body to what the header asks, so the value checks are reached.
        item = {0: 4, 1: 2, 2: 1}[code]
        sections = [count * dim * item] + ([count * 4] if code == 2 else []) + [count * 8]
        offset, out = 64, b""
        rng = np.random.default_rng(len(body))
        for size in sections:
            start = -(-offset // 64) * 64
            out += b"\0" * (start - offset) + rng.integers(0, 256, size, dtype=np.uint8).tobytes()
            offset = start + size
        body = out
    header = struct.pack(
        "<8sIIQQ32s", b"CLIPRTIX", version, code, dim, count, hashlib.sha256(body).digest()
    )
    _load_and_use(header.ljust(64, b"\0") + body)
