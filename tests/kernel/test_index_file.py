"""Index.save / Index.load: round trips, memory mapping, and files that must be refused."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from cliprt.errors import IndexFileError
from cliprt.runtime.index import FORMAT_VERSION, Index

DTYPES = ("fp32", "fp16", "int8")


def built(dtype: str, n: int = 300, d: int = 37) -> tuple[Index, np.ndarray]:
    rng = np.random.default_rng(11)
    index = Index(d, dtype)
    index.add(rng.standard_normal((n, d), dtype=np.float32), ids=np.arange(n) * 3 + 5)
    return index, rng.standard_normal((6, d), dtype=np.float32)


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path: Path, dtype: str, mmap: bool) -> None:
    index, q = built(dtype)
    path = tmp_path / "a.idx"
    index.save(path)
    loaded = Index.load(path, mmap=mmap)
    assert (len(loaded), loaded.dim, loaded.dtype) == (300, 37, dtype)
    assert isinstance(loaded._rows, np.memmap) == mmap
    for a, b in zip(index.search(q, 12), loaded.search(q, 12), strict=True):
        np.testing.assert_array_equal(a, b)
    # No temp file is left beside the index.
    assert [p.name for p in tmp_path.iterdir()] == ["a.idx"]


def test_mapped_index_grows_in_memory(tmp_path: Path) -> None:
    index, q = built("fp16", n=10)
    index.save(tmp_path / "a.idx")
    loaded = Index.load(tmp_path / "a.idx")
    loaded.add(q, ids=[900, 901, 902, 903, 904, 905])
    assert len(loaded) == 16
    _, ids = loaded.search(q[2], 1)
    assert ids[0, 0] == 902
    assert len(Index.load(tmp_path / "a.idx")) == 10  # the file is untouched


def test_empty_index_round_trip(tmp_path: Path) -> None:
    Index(4, "int8").save(tmp_path / "e.idx")
    loaded = Index.load(tmp_path / "e.idx")
    assert len(loaded) == 0 and loaded.dtype == "int8"
    assert loaded.search(np.ones(4, np.float32), 2)[1].tolist() == [[-1, -1]]


def test_save_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.idx"
    built("fp32", n=5)[0].save(path)
    built("fp32", n=9)[0].save(path)
    assert len(Index.load(path)) == 9


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "a.idx"
    built("int8")[0].save(path)
    return path


def test_truncated_file_is_refused(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[:-100])
    with pytest.raises(IndexFileError, match="is truncated"):
        Index.load(saved)
    saved.write_bytes(data[:20])
    with pytest.raises(IndexFileError, match="not a cliprt index"):
        Index.load(saved)


def test_altered_file_is_refused(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[200] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="sha256 does not match"):
        Index.load(saved, mmap=False)


def test_newer_format_is_refused_with_versions(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[8:12] = struct.pack("<I", FORMAT_VERSION + 1)
    saved.write_bytes(bytes(data))
    with pytest.raises(
        IndexFileError,
        match=rf"version {FORMAT_VERSION + 1}.*up to version {FORMAT_VERSION}; upgrade",
    ):
        Index.load(saved)


def test_other_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.ones((4, 4), np.float32))
    with pytest.raises(IndexFileError, match="not a cliprt index"):
        Index.load(path)


def test_bad_dtype_code_is_refused(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[12:16] = struct.pack("<I", 7)
    saved.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="invalid header"):
        Index.load(saved)
