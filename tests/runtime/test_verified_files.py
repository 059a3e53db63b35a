"""The verified-file cache: a file is hashed once, and any change to it is still caught."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cliprt import verified_files
from cliprt.errors import ModelFolderError
from cliprt.manifest import read_manifest
from cliprt.verified_files import checked_path


@pytest.fixture
def folder(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLIPRT_CACHE_DIR", str(tmp_path / "cache"))
    # Files copied just now are "racy" (changed within RACY_S of their hashing) and would
    # never be recorded; the tests want the recorded path.
    monkeypatch.setattr(verified_files, "RACY_S", -1.0)
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "m"))


def _records(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "verified").glob("*.json"))


def test_first_check_records_and_a_changed_file_is_still_caught(
    folder: Path, tmp_path: Path
) -> None:
    entry = read_manifest(folder).towers["text"]["fp32"]
    assert checked_path(folder, entry) == folder / entry.file
    assert len(_records(tmp_path)) == 1
    assert checked_path(folder, entry) == folder / entry.file  # from the record
    # Same size, one byte flipped, timestamps put back: ctime still moves.
    path = folder / entry.file
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ModelFolderError, match="sha256"):
        checked_path(folder, entry)


def test_a_replaced_file_and_a_new_manifest_hash_are_checked_again(folder: Path) -> None:
    entry = read_manifest(folder).towers["vision"]["fp32"]
    checked_path(folder, entry)
    other = read_manifest(folder).towers["vision"]["int8"]
    # Rename another tower over it: new inode (and size), caught.
    os.replace(folder / other.file, folder / entry.file)
    with pytest.raises(ModelFolderError):
        checked_path(folder, entry)


def test_verify_always_and_unwritable_cache_fall_back_to_hashing(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = read_manifest(folder).tokenizer
    monkeypatch.setenv("CLIPRT_VERIFY", "always")
    checked_path(folder, entry)
    assert _records(tmp_path) == []
    monkeypatch.delenv("CLIPRT_VERIFY")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("CLIPRT_CACHE_DIR", str(blocker))
    assert checked_path(folder, entry) == folder / entry.file
