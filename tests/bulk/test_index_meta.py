"""Index files with keys and a model fingerprint (format version 2); version 1 files,
written by cliprt before this section existed, still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cliprt.errors import IndexFileError, InputError, ModelMismatchError
from cliprt.runtime.fingerprint import ModelFingerprint
from cliprt.runtime.index import Index

DATA = Path(__file__).parent / "data"
FP = ModelFingerprint(manifest_sha256="ab" * 32, precision="fp32", embed_dim=8, model="m")


def _vectors() -> np.ndarray:
    return np.load(DATA / "v1_vectors.npy")


@pytest.mark.parametrize("dtype", ["fp32", "int8"])
def test_version1_files_from_the_previous_cliprt_load(dtype: str, tmp_path: Path) -> None:
    old = Index.load(DATA / f"v1_{dtype}.cix")
    assert len(old) == 5 and old.fingerprint is None and not old.has_keys
    x = _vectors()
    _, ids = old.search(x, k=1)
    assert ids[:, 0].tolist() == [10, 11, 12, 13, 14]
    # Without keys or fingerprint this cliprt writes version 1, byte for byte as before.
    new = Index(8, dtype)
    new.add(x, ids=[10, 11, 12, 13, 14])
    new.save(tmp_path / "same.cix")
    assert (tmp_path / "same.cix").read_bytes() == (DATA / f"v1_{dtype}.cix").read_bytes()


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "int8"])
def test_keys_and_fingerprint_round_trip(dtype: str, mmap: bool, tmp_path: Path) -> None:
    x = _vectors()
    keys = ["a.jpg", "dossier/été.png", "", "c d.jpg", "x" * 300]
    index = Index(8, dtype)
    index.add(x[:2], keys=keys[:2])
    index.add(x[2:], keys=keys[2:])
    index.fingerprint = FP
    index.save(tmp_path / "k.cix")
    back = Index.load(tmp_path / "k.cix", mmap=mmap)
    assert back.fingerprint == FP and back.has_keys
    _, ids = back.search(x, k=2)
    assert back.keys_of(ids[:, 0]) == keys
    assert back.keys_of([-1, 4]) == [None, "x" * 300]
    back.add(x[:1], keys=["new.jpg"])  # a loaded index grows, keys included
    assert back.keys_of([5]) == ["new.jpg"]
    back.save(tmp_path / "k2.cix")
    assert Index.load(tmp_path / "k2.cix").keys_of(list(range(6))) == [*keys, "new.jpg"]


def test_keys_follow_custom_ids(tmp_path: Path) -> None:
    index = Index(8)
    index.add(_vectors(), ids=[50, 40, 30, 20, 10], keys=list("abcde"))
    assert index.keys_of([10, 50, -1]) == ["e", "a", None]
    with pytest.raises(InputError, match="id 7 is not in this index"):
        index.keys_of([7])


def test_keys_for_all_rows_or_none() -> None:
    index = Index(8)
    index.add(_vectors()[:2])
    with pytest.raises(InputError, match="has no keys"):
        index.add(_vectors()[2:], keys=["a", "b", "c"])
    with pytest.raises(InputError, match="one string per vector"):
        Index(8).add(_vectors(), keys=["a"])
    with pytest.raises(InputError, match="has no keys"):
        index.keys_of([0])


def test_fingerprint_dim_must_match() -> None:
    with pytest.raises(InputError, match="dim 8"):
        Index(4).fingerprint = FP


def test_altered_or_truncated_metadata_is_refused(tmp_path: Path) -> None:
    index = Index(8)
    index.add(_vectors(), keys=list("abcde"))
    index.fingerprint = FP
    path = tmp_path / "k.cix"
    index.save(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last key byte
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="altered"):
        Index.load(path)
    path.write_bytes(bytes(data[:-3]))
    with pytest.raises(IndexFileError, match="truncated"):
        Index.load(path)


def test_search_refuses_another_models_index(shapes32) -> None:
    index = Index(shapes32.embed_dim)
    index.add(shapes32.encode_texts(["a red circle", "a blue square"]), keys=["r", "b"])
    index.fingerprint = ModelFingerprint("00" * 32, "fp32", shapes32.embed_dim, "other")
    with pytest.raises(ModelMismatchError, match="built with model other"):
        shapes32.search(index, texts=["a red circle"], k=1)
    _, ids = shapes32.search(index, texts=["a red circle"], k=1, allow_model_mismatch=True)
    assert index.keys_of(ids[0]) == ["r"]
    # Another precision of the same model is the same embedding space: accepted.
    index.fingerprint = ModelFingerprint(
        shapes32.fingerprint.manifest_sha256, "int8", shapes32.embed_dim, "shapes"
    )
    shapes32.search(index, texts=["a red circle"], k=1)
