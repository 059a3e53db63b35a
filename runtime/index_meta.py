"""The optional metadata section of an index file (format version 2): which image each
row is (its key, e.g. a path) and which model made the rows (its fingerprint).

An index file of version 1 (rows, scales, ids; see :mod:`cliprt.runtime.index`) has no
such section and still loads. Version 2 appends one section after the ids, starting on
the next 64-byte boundary, covered by the header's sha256 like every other byte::

    0   8s   magic b"CLIPRTMX"
    8   u64  J: bytes of the JSON block
    16  u64  B: bytes of the key blob (0 when the index has no keys)
    24  u64  flags: bit 0 set when the index has keys
    32       JSON (J bytes, UTF-8): {"fingerprint": {...} | null}
    then, each on a 64-byte boundary, when the index has keys:
             key offsets: (count + 1) int64, row r's key is blob[off[r]:off[r+1]]
             key blob: B bytes, the UTF-8 keys one after another

Keys are kept row-aligned (row r of the index has key r) and read lazily from the
mapped file, so a loaded 100M-row index does not build 100M Python strings.
"""

from __future__ import annotations

import json
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cliprt.errors import IndexFileError, InputError
from cliprt.runtime.fingerprint import ModelFingerprint

MAGIC = b"CLIPRTMX"
_HEAD = struct.Struct("<8sQQQ")
HEAD_BYTES = _HEAD.size  # 32
_HAS_KEYS = 1
_ALIGN = 64


def _align(offset: int) -> int:
    return (offset + _ALIGN - 1) // _ALIGN * _ALIGN


class KeyStore:
    """Row-aligned string keys: appended into one UTF-8 buffer and an array of end
    offsets (8 bytes a row beyond the text, not a Python object per key), or viewed in
    a mapped file."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._ends = array("q")
        self._offsets: np.ndarray | None = None  # mapped (count + 1) int64
        self._blob: np.ndarray | None = None  # mapped uint8

    @classmethod
    def view(cls, offsets: np.ndarray, blob: np.ndarray) -> KeyStore:
        """Keys read lazily from arrays (e.g. views of a mapped index file)."""
        store = cls()
        store._offsets, store._blob = offsets, blob
        return store

    def __len__(self) -> int:
        if self._offsets is not None:
            return int(self._offsets.shape[0]) - 1
        return len(self._ends)

    def _materialize(self) -> None:
        if self._offsets is None or self._blob is None:
            return
        self._buf = bytearray(self._blob.tobytes())
        self._ends = array("q", self._offsets[1:].tolist())
        self._offsets = self._blob = None

    def extend(self, keys: Sequence[str]) -> None:
        """Appends keys (a mapped store is copied into memory first)."""
        self._materialize()
        for k in keys:
            self._buf += k.encode("utf-8")
            self._ends.append(len(self._buf))

    def __getitem__(self, row: int) -> str:
        if self._offsets is not None and self._blob is not None:
            lo, hi = int(self._offsets[row]), int(self._offsets[row + 1])
            return self._blob[lo:hi].tobytes().decode("utf-8")
        lo = self._ends[row - 1] if row else 0
        return self._buf[lo : self._ends[row]].decode("utf-8")

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets int64 (n + 1), blob uint8), the file's layout."""
        if self._offsets is not None:
            return np.ascontiguousarray(self._offsets), np.ascontiguousarray(self._blob)
        offsets = np.zeros(len(self._ends) + 1, dtype=np.int64)
        offsets[1:] = np.frombuffer(self._ends, dtype=np.int64) if self._ends else []
        return offsets, np.frombuffer(bytes(self._buf), dtype=np.uint8)


def check_keys(keys: Sequence[str], m: int) -> list[str]:
    """`keys` as a list of m strings.

    Raises:
        InputError: wrong count or a non-string key.
    """
    if isinstance(keys, str):
        raise InputError("keys must be a sequence of strings (one per vector), got one string")
    keys = list(keys)
    if len(keys) != m:
        raise InputError(f"keys must hold one string per vector: got {len(keys)} for {m} vectors")
    for i, k in enumerate(keys):
        if not isinstance(k, str):
            raise InputError(f"key {i} is {type(k).__name__}, not a string; pass e.g. str(path)")
    return keys


@dataclass(frozen=True)
class Section:
    """The bytes of a metadata section to write after the ids, as consecutive parts
    (each (padding before it, array))."""

    parts: list[tuple[int, np.ndarray]]


def encode(
    fingerprint: ModelFingerprint | None, keys: KeyStore | None, start: int, count: int
) -> Section:
    """The metadata section of an index of `count` rows, starting at file offset `start`
    (64-byte aligned)."""
    doc = {"fingerprint": None if fingerprint is None else fingerprint.to_dict()}
    js = json.dumps(doc, sort_keys=True).encode("utf-8")
    arrays: list[np.ndarray] = []
    blob_len = 0
    if keys is not None:
        if len(keys) != count:
            raise InputError(f"the index has {count} rows but {len(keys)} keys")
        offsets, blob = keys.arrays()
        arrays, blob_len = [offsets, blob], int(blob.shape[0])
    head = _HEAD.pack(MAGIC, len(js), blob_len, _HAS_KEYS if keys is not None else 0)
    parts = [(0, np.frombuffer(head + js, dtype=np.uint8))]
    offset = start + HEAD_BYTES + len(js)
    for arr in arrays:
        pad = _align(offset) - offset
        parts.append((pad, arr))
        offset += pad + arr.nbytes
    return Section(parts)


def section_size(head: bytes, start: int, count: int, where: str) -> int:
    """Bytes from `start` to the end of a section whose first HEAD_BYTES are `head`.

    Raises:
        IndexFileError: no section magic (a damaged version-2 file).
    """
    if len(head) < HEAD_BYTES or not head.startswith(MAGIC):
        raise IndexFileError(
            f"{where} is truncated or damaged: its metadata section (after the ids) is missing; "
            "rebuild or restore the file"
        )
    _, js_len, blob_len, flags = _HEAD.unpack(head)
    end = start + HEAD_BYTES + js_len
    if flags & _HAS_KEYS:
        end = _align(_align(end) + 8 * (count + 1)) + blob_len
    return end - start


def decode(
    raw: np.ndarray, start: int, count: int, where: str
) -> tuple[ModelFingerprint | None, KeyStore | None]:
    """Reads the section at `start` of the file's bytes `raw` (checksum already checked).

    Raises:
        IndexFileError: a malformed section.
    """
    _, js_len, blob_len, flags = _HEAD.unpack(bytes(raw[start : start + HEAD_BYTES]))
    js_start = start + HEAD_BYTES
    try:
        fp_doc = json.loads(bytes(raw[js_start : js_start + js_len]).decode("utf-8"))["fingerprint"]
        fp = None if fp_doc is None else ModelFingerprint.from_dict(fp_doc, where=where)
    except (ValueError, KeyError, TypeError, InputError) as exc:
        raise IndexFileError(
            f"{where}: malformed metadata section ({exc}); rebuild the file"
        ) from exc
    if not flags & _HAS_KEYS:
        return fp, None
    off_start = _align(js_start + js_len)
    offsets = raw[off_start : off_start + 8 * (count + 1)].view(np.int64)
    blob_start = _align(off_start + 8 * (count + 1))
    blob = raw[blob_start : blob_start + blob_len]
    if count + 1 != offsets.shape[0] or (
        count and (offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets) < 0))
    ):
        raise IndexFileError(f"{where}: malformed key offsets; rebuild the file")
    return fp, KeyStore.view(offsets, blob)
