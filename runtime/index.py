"""Exact top-k search by inner product over fp32, fp16 or int8 rows (the C++ kernel).

An :class:`Index` owns its rows. ``add`` copies (and, for fp16/int8, converts) the given
vectors into the index's own storage; ``search`` hands that storage to the kernel without
a copy. With L2-normalised embeddings the inner product is the cosine similarity.

Precision contract:
    * fp32: rows stored as given; scores accumulate in fp32.
    * fp16: rows stored as IEEE half; each element is widened to fp32 exactly and scores
      accumulate in fp32 (never fp16).
    * int8: each row r is stored as ``q_r`` in [-127, 127] with one symmetric fp32 scale
      ``s_r = max|x_r| / 127``; the score is ``s_r * dot(q_r, query)`` accumulated in fp32.
      "Exact" means the exact top-k of the *dequantized* rows ``s_r * q_r``, not of the
      vectors originally added. Queries are never quantized for the result: on CPUs with
      AVX512-VNNI (ISA ``avx512vnni``) an int8 dot product against a quantized copy of
      each query only screens out rows whose provable upper bound is below the current
      k-th score; every row that can matter is scored exactly, so ids and scores equal
      the ``avx512`` ISA's bit for bit (tested), only faster.

Reproducibility: a score depends only on the row, the query and the instruction set the
kernel runs (``available_isas()``; ``CLIPRT_ISA`` forces one), never on the batch the
query came in or the thread count. Each ISA has its own fixed summation order, so scores
from different ISAs may differ in the last bits.

Ordering: results are sorted by score descending; equal scores put the lower id first.
When ``k`` exceeds the number of rows the tail of each result row holds id -1 and score
-inf (FAISS's convention); an empty index gives only such padding, and zero queries give
(0, k) results. ``k`` may exceed the number of rows by at most ``MAX_PADDED_K``: a larger
``k`` is an InputError, never an allocation of ``nq * k`` padding. Rows whose score is
NaN (a NaN in the row) never appear.

File format (little-endian), written atomically by :meth:`Index.save`::

    0   8s   magic b"CLIPRTIX"
    8   u32  format version (1; 2 when the metadata section follows)
    12  u32  dtype code (0 fp32, 1 fp16, 2 int8)
    16  u64  dim
    24  u64  count (rows)
    32  32s  sha256 of everything after the 64-byte header
    64       rows (count * dim * itemsize), then for int8 the scales (count * fp32),
             then the ids (count * int64); each section starts on a 64-byte boundary.

Loading checks, before any row is used: the header (magic, version, dtype, dim up to
``MAX_DIM``), the exact file size, the sha256, then the values (ids >= 0, rows and int8
scales finite): a damaged or crafted file is an IndexFileError, never a wrong hit.

             Version 2 then holds a metadata section: each row's key (e.g. its image
             path) and the fingerprint of the model that made the rows (see
             :mod:`cliprt.runtime.index_meta`). An index without keys and fingerprint is
             written as version 1, byte for byte as before; both versions load.
"""

from __future__ import annotations

import hashlib
import operator
import os
import stat
import struct
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from cliprt.errors import IndexFileError, InputError, ProviderError
from cliprt.runtime import index_meta
from cliprt.runtime.atomic import atomic_write
from cliprt.runtime.fingerprint import ModelFingerprint
from cliprt.runtime.threads import check_threads

__all__ = ["FORMAT_VERSION", "MAX_DIM", "MAX_PADDED_K", "Index", "available_isas"]

FORMAT_VERSION = 2
_PLAIN_VERSION = 1  # no metadata section: what older cliprt versions read
_MAGIC = b"CLIPRTIX"
_HEADER = struct.Struct("<8sIIQQ32s")
_HEADER_BYTES = 64
_ALIGN = 64
_DTYPES: dict[str, np.dtype[Any]] = {
    "fp32": np.dtype(np.float32),
    "fp16": np.dtype(np.float16),
    "int8": np.dtype(np.int8),
}
_DTYPE_CODES = {"fp32": 0, "fp16": 1, "int8": 2}
_HASH_CHUNK = 64 << 20  # bytes hashed per step, so a large mmap is never copied whole
_CHUNK_ROWS = 65536  # rows checked / converted per step in add
_FP16_MAX = 65504.0
MAX_DIM = 1 << 20  # far beyond any embedding; a larger header dim is a damaged file
MAX_PADDED_K = 1 << 16  # hits per query beyond len(index) (padding) that search accepts


def _kernel() -> ModuleType:
    """The compiled kernel, imported on first use so that a bad CLIPRT_ISA fails only
    what searches, with a typed error (the kernel resolves it at import)."""
    try:
        from cliprt import _topk
    except ImportError as exc:
        if "CLIPRT_ISA" in str(exc):
            raise ProviderError(
                f"{exc} Unset CLIPRT_ISA or set it to one of those to search."
            ) from None
        raise
    return _topk


def available_isas() -> list[str]:
    """The SIMD instruction sets the kernel can use on this machine, best last.

    ``CLIPRT_ISA`` (environment variable, read at import) forces one of them.

    Raises:
        ProviderError: CLIPRT_ISA names an instruction set this machine lacks.
    """
    return list(_kernel().available_isas())


def _align(offset: int) -> int:
    return (offset + _ALIGN - 1) // _ALIGN * _ALIGN


def _check_rows(name: str, arr: np.ndarray, dim: int) -> None:
    """Rows must be contiguous; the row stride may be larger (a slice of a wider array)."""
    if arr.ndim != 2:
        raise InputError(
            f"{name} must be 2-D (n, {dim}), got shape {arr.shape}; reshape it, e.g. "
            f"x.reshape(-1, {dim})."
        )
    if arr.shape[1] != dim:
        raise InputError(
            f"{name} have dim {arr.shape[1]} but the index has dim {dim}; pass vectors "
            f"of length {dim} (the same embedding model the index was built with)."
        )
    if arr.shape[0] and arr.shape[1] > 1 and arr.strides[1] != arr.itemsize:
        raise InputError(
            f"{name} rows are not contiguous (strides {arr.strides}, item size "
            f"{arr.itemsize}); pass np.ascontiguousarray(x) instead."
        )
    if arr.shape[0] > 1 and (arr.strides[0] < 0 or arr.strides[0] % arr.itemsize):
        raise InputError(
            f"{name} have a row stride of {arr.strides[0]} bytes, which the kernel "
            f"cannot walk; pass np.ascontiguousarray(x) instead."
        )


class Index:
    """Exact top-k inner-product search over rows stored as fp32, fp16 or int8.

    Args:
        dim: Length of each vector (e.g. 512 for ViT-B/32 embeddings).
        dtype: Row storage: ``"fp32"``, ``"fp16"`` or ``"int8"`` (see the module
            docstring for what "exact" means for each).
        threads: Threads a search uses, 1 to ``MAX_THREADS`` (256); None uses every
            core of the machine.

    Example:
        >>> index = Index(512, "fp16")
        >>> index.add(image_embeds)              # float32 (n, 512)
        >>> scores, ids = index.search(text_embeds, k=10)
    """

    def __init__(self, dim: int, dtype: str = "fp32", *, threads: int | None = None):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise InputError(
                f"dim must be a positive integer, got {dim!r}; pass the embedding "
                f"length, e.g. Index(512)."
            )
        if dtype not in _DTYPES:
            raise InputError(f"unknown index dtype {dtype!r}; choose one of {sorted(_DTYPES)}.")
        if dim > MAX_DIM:
            raise InputError(f"dim must be at most {MAX_DIM}, got {dim}.")
        threads = check_threads(threads, none="every core")
        self._dim = int(dim)
        self._dtype = dtype
        self._threads = 0 if threads is None else threads
        # Test hook: rows below which a thread is not started (0: the kernel decides).
        self._min_rows_per_thread = 0
        self._n = 0
        self._rows = np.empty((0, self._dim), dtype=_DTYPES[dtype])
        self._scales = np.empty(0, dtype=np.float32)
        self._ids = np.empty(0, dtype=np.int64)
        self._keys: index_meta.KeyStore | None = None
        self._fingerprint: ModelFingerprint | None = None
        self._row_of: dict[int, int] | None = None  # id -> row, built on first keys_of

    @property
    def dim(self) -> int:
        """Length of each stored vector."""
        return self._dim

    @property
    def dtype(self) -> str:
        """Row storage: "fp32", "fp16" or "int8"."""
        return self._dtype

    def __len__(self) -> int:
        return self._n

    @property
    def fingerprint(self) -> ModelFingerprint | None:
        """The model that made the rows (saved with the index), or None if unknown."""
        return self._fingerprint

    @fingerprint.setter
    def fingerprint(self, value: ModelFingerprint | None) -> None:
        if value is not None and not isinstance(value, ModelFingerprint):
            raise InputError(
                f"fingerprint must be a ModelFingerprint or None, got {type(value).__name__}"
            )
        if value is not None and value.embed_dim != self._dim:
            raise InputError(
                f"fingerprint says dim {value.embed_dim} but the index has dim {self._dim}"
            )
        self._fingerprint = value

    @property
    def has_keys(self) -> bool:
        """True when every row has a key (e.g. its image path), saved with the index."""
        return self._keys is not None

    def keys_of(self, ids: np.ndarray | Sequence[int]) -> list[str | None]:
        """The keys of the rows with these ids (as search returns them); None for -1.

        Raises:
            InputError: the index has no keys, or an id it does not hold.
        """
        if self._keys is None:
            raise InputError(
                "this index has no keys (it was built without them); add vectors with "
                "keys=... or build it with `cliprt index build`"
            )
        flat = np.asarray(ids, dtype=np.int64).reshape(-1).tolist()
        if self._row_of is None:
            stored = self._ids[: self._n]
            positions = self._n == 0 or (
                stored[0] == 0 and stored[-1] == self._n - 1 and bool(np.all(np.diff(stored) == 1))
            )
            self._row_of = {} if positions else {int(i): r for r, i in enumerate(stored.tolist())}
        out: list[str | None] = []
        for i in flat:
            if i < 0:
                out.append(None)
                continue
            row = self._row_of.get(i, i) if self._row_of else i
            if not (0 <= row < self._n) or (self._row_of and i not in self._row_of):
                raise InputError(f"id {i} is not in this index ({self._n} rows)")
            out.append(self._keys[row])
        return out

    def __repr__(self) -> str:
        return f"Index(dim={self._dim}, dtype={self._dtype!r}, rows={self._n})"

    # -- adding ------------------------------------------------------------------------

    def add(
        self,
        vectors: np.ndarray,
        ids: np.ndarray | Sequence[int] | None = None,
        *,
        keys: Sequence[str] | None = None,
    ) -> None:
        """Copies vectors into the index, converting them to its dtype.

        Args:
            vectors: float32 array (n, dim), or (dim,) for one vector. An fp16 index also
                takes float16. Rows must be contiguous (a row stride larger than dim is
                fine). int8 quantizes each row with scale max|x|/127.
            ids: n non-negative int64 ids returned by search; default: the positions
                ``len(index) .. len(index) + n - 1``.
            keys: n strings naming the vectors (e.g. image paths), saved with the
                index and returned by :meth:`keys_of`. An index has keys for every row
                or for none.

        Raises:
            InputError: wrong shape, dtype, strides, non-finite values, bad ids or keys.
        """
        if not isinstance(vectors, np.ndarray):
            raise InputError(
                f"vectors must be a numpy array, got {type(vectors).__name__}; pass "
                f"np.asarray(x, dtype=np.float32)."
            )
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        allowed = (np.float32, np.float16) if self._dtype == "fp16" else (np.float32,)
        if vectors.dtype not in allowed:
            names = " or ".join(np.dtype(t).name for t in allowed)
            raise InputError(
                f"vectors have dtype {vectors.dtype} but a {self._dtype} index takes "
                f"{names}; convert explicitly, e.g. x.astype(np.float32) (the index does "
                f"not copy-convert the database behind your back)."
            )
        _check_rows("vectors", vectors, self._dim)
        m = vectors.shape[0]
        # Checked and converted in chunks of rows: temporaries stay small for any n.
        for start in range(0, m, _CHUNK_ROWS):
            chunk = vectors[start : start + _CHUNK_ROWS]
            finite = np.isfinite(chunk).all(axis=1)
            if not finite.all():
                bad = start + int(np.flatnonzero(~finite)[0])
                raise InputError(
                    f"vectors contain NaN or inf (first in row {bad}); remove or fix those "
                    f"rows before adding."
                )
            if self._dtype == "fp16" and chunk.dtype == np.float32:
                big = np.abs(chunk).max(axis=1) > _FP16_MAX
                if big.any():
                    bad = start + int(np.flatnonzero(big)[0])
                    raise InputError(
                        f"row {bad} has values beyond the fp16 range (|x| > {_FP16_MAX:g}); "
                        f"use an fp32 or int8 index, or normalise the vectors."
                    )
        new_ids = self._check_ids(ids, m)
        new_keys = None if keys is None else index_meta.check_keys(keys, m)
        if self._n and (new_keys is None) != (self._keys is None):
            have = "has keys" if self._keys is not None else "has no keys"
            raise InputError(
                f"this index {have} for its {self._n} rows; add keys for all rows or for none"
            )
        self._reserve(self._n + m)
        for start in range(0, m, _CHUNK_ROWS):
            chunk = vectors[start : start + _CHUNK_ROWS]
            lo = self._n + start
            hi = lo + chunk.shape[0]
            if self._dtype == "int8":
                scale = np.abs(chunk).max(axis=1) / np.float32(127.0)
                safe = np.where(scale > 0, scale, np.float32(1.0))
                q = np.rint(chunk / safe[:, None])
                self._rows[lo:hi] = np.clip(q, -127, 127).astype(np.int8)
                self._scales[lo:hi] = scale
            else:
                self._rows[lo:hi] = chunk
        self._ids[self._n : self._n + m] = new_ids
        if new_keys is not None:
            if self._keys is None:
                self._keys = index_meta.KeyStore()
            self._keys.extend(new_keys)
        self._row_of = None
        self._n += m

    def _check_ids(self, ids: np.ndarray | Sequence[int] | None, m: int) -> np.ndarray:
        if ids is None:
            return np.arange(self._n, self._n + m, dtype=np.int64)
        arr = np.asarray(ids)
        if arr.ndim != 1 or arr.shape[0] != m:
            raise InputError(
                f"ids must be a 1-D sequence of {m} integers (one per vector), got shape "
                f"{arr.shape}."
            )
        if m and not np.issubdtype(arr.dtype, np.integer):
            raise InputError(
                f"ids must be integers, got dtype {arr.dtype}; pass e.g. "
                f"np.asarray(ids, dtype=np.int64)."
            )
        arr = arr.astype(np.int64)
        if m and arr.min() < 0:
            raise InputError(f"ids must be >= 0 (-1 marks a missing hit), got {int(arr.min())}.")
        return arr

    def _reserve(self, n: int) -> None:
        """Grows owned storage geometrically, so n adds cost O(n) copies in total. A
        memory-mapped (read-only) index becomes an in-memory one on its first add."""
        cap = self._rows.shape[0]
        if n <= cap and self._rows.flags.writeable:
            return
        new_cap = max(n, 2 * cap, 64)
        rows = np.empty((new_cap, self._dim), dtype=self._rows.dtype)
        rows[: self._n] = self._rows[: self._n]
        scales = self._scales
        if self._dtype == "int8":
            scales = np.empty(new_cap, dtype=np.float32)
            scales[: self._n] = self._scales[: self._n]
        ids = np.empty(new_cap, dtype=np.int64)
        ids[: self._n] = self._ids[: self._n]
        self._rows, self._scales, self._ids = rows, scales, ids

    # -- searching ---------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by inner product.

        Args:
            queries: float32 array (nq, dim), or (dim,) for one query (treated as
                (1, dim)). Other float dtypes are converted (queries are small).
            k: Hits per query, >= 1. Beyond len(index) the tail is id -1, score -inf;
                k may exceed len(index) by at most MAX_PADDED_K.

        Returns:
            (scores, ids): float32 (nq, k) and int64 (nq, k), best first; equal scores
            put the lower id first.

        Raises:
            InputError: k < 1 or too large, wrong dim, non-float dtype, NaN/inf in
                the queries, or results too large for memory.
        """
        if isinstance(k, bool):
            raise InputError(f"k must be a positive integer, got {k!r}.")
        try:
            k = operator.index(k)
        except TypeError:
            raise InputError(f"k must be a positive integer, got {k!r}.") from None
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}; ask for at least one hit per query.")
        if k > self._n + MAX_PADDED_K:
            raise InputError(
                f"k={k} exceeds the index's {self._n} rows by more than {MAX_PADDED_K} "
                f"(the padding cap); ask for at most k={self._n + MAX_PADDED_K}, or "
                f"k=len(index) for every row."
            )
        q = np.asarray(queries)
        if not np.issubdtype(q.dtype, np.floating):
            raise InputError(
                f"queries must be floating point, got dtype {q.dtype}; pass x.astype(np.float32)."
            )
        if q.ndim == 1:
            q = q[None, :]
        if q.dtype != np.float32:
            q = q.astype(np.float32)
        _check_rows("queries", q, self._dim)
        if not np.isfinite(q).all():
            bad = int(np.flatnonzero(~np.isfinite(q).all(axis=1))[0])
            raise InputError(
                f"queries contain NaN or inf (first in query {bad}); a NaN query has no "
                f"ranking, fix or drop it."
            )
        nq = q.shape[0]
        try:
            if nq == 0 or self._n == 0:
                # No rows to rank (or nothing to rank them for): FAISS's padding, without
                # calling the kernel.
                return (
                    np.full((nq, k), -np.inf, dtype=np.float32),
                    np.full((nq, k), -1, dtype=np.int64),
                )
            scales = self._scales[: self._n] if self._dtype == "int8" else None
            return _kernel().search(
                self._rows[: self._n],
                q,
                k=k,
                threads=self._threads,
                scales=scales,
                ids=self._ids[: self._n],
                min_rows_per_thread=self._min_rows_per_thread,
            )
        except MemoryError:
            raise InputError(
                f"the results of {nq} queries x k={k} ({12 * nq * k} bytes) do not fit in "
                f"memory; search fewer queries at a time or with a smaller k."
            ) from None

    # -- files -------------------------------------------------------------------------

    def _sections(self) -> list[np.ndarray]:
        n = self._n
        out = [np.ascontiguousarray(self._rows[:n])]
        if self._dtype == "int8":
            out.append(np.ascontiguousarray(self._scales[:n]))
        out.append(np.ascontiguousarray(self._ids[:n]))
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the index to one file, atomically (a hidden temp file beside it, then
        os.replace), with the mode a plain open() gives (0o666 less the umask). Temp files
        left by a writer killed meanwhile (kill -9) are removed (cliprt.runtime.atomic).

        Raises:
            OSError: the folder is missing or not writable, or the disk is full.
        """
        path = Path(path)
        sections = self._sections()
        digest = hashlib.sha256()
        offset = _HEADER_BYTES
        layout: list[tuple[int, np.ndarray]] = []
        for arr in sections:
            start = _align(offset)
            pad = start - offset
            if pad:
                digest.update(bytes(pad))
            buf = arr.reshape(-1).view(np.uint8).data
            digest.update(buf)
            layout.append((pad, arr))
            offset = start + arr.nbytes
        version = _PLAIN_VERSION
        if self._keys is not None or self._fingerprint is not None:
            version = FORMAT_VERSION
            meta = index_meta.encode(self._fingerprint, self._keys, _align(offset), self._n)
            first = True
            for pad, arr in meta.parts:
                pad += (_align(offset) - offset) if first else 0
                first = False
                if pad:
                    digest.update(bytes(pad))
                digest.update(arr.reshape(-1).view(np.uint8).data)
                layout.append((pad, arr))
                offset += pad + arr.nbytes
        header = _HEADER.pack(
            _MAGIC,
            version,
            _DTYPE_CODES[self._dtype],
            self._dim,
            self._n,
            digest.digest(),
        ).ljust(_HEADER_BYTES, b"\0")
        with atomic_write(path) as f:
            f.write(header)
            for pad, arr in layout:
                f.write(bytes(pad))
                f.write(arr.reshape(-1).view(np.uint8).data)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = True) -> Index:
        """Reads an index written by :meth:`save`, checking its header, size, checksum
        and values (see the module docstring).

        Args:
            path: The index file.
            mmap: Map the rows read-only from the file (no copy, pages load on demand);
                False reads them into memory. A mapped index copies itself into memory
                on its first ``add``.

        Raises:
            IndexFileError: missing, not a regular file, not an index file, a newer
                format, truncated, altered or holding invalid values.
            InputError: `path` is not a path.
        """
        if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
            raise InputError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
        path = Path(path)
        size, head = _read_head(path)
        dtype, dim, count, digest, version = _parse_header(path, head)
        specs: list[tuple[np.dtype[Any], tuple[int, ...]]] = [(_DTYPES[dtype], (count, dim))]
        if dtype == "int8":
            specs.append((np.dtype(np.float32), (count,)))
        specs.append((np.dtype(np.int64), (count,)))
        # Python ints: a crafted count * dim cannot overflow into a negative size.
        offsets = []
        offset = _HEADER_BYTES
        for dt, shape in specs:
            start = _align(offset)
            offsets.append(start)
            offset = start + dt.itemsize * _product(shape)
        meta_at: int | None = None
        if version >= 2:
            if size < _align(offset):
                raise IndexFileError(
                    f"{path} is truncated: format version {version} needs a metadata section "
                    f"after byte {_align(offset)}, the file has {size} bytes; rebuild or restore it."
                )
            with open(path, "rb") as f:
                f.seek(_align(offset))
                head = f.read(index_meta.HEAD_BYTES)
            meta_at = _align(offset)
            offset = meta_at + index_meta.section_size(head, meta_at, count, str(path))
        if size != offset:
            what = "truncated" if size < offset else "longer than its header says"
            raise IndexFileError(
                f"{path} is {what}: {size} bytes, its header ({count} rows of dim {dim}, "
                f"{dtype}) needs {offset}; rebuild or restore the file."
            )
        try:
            raw = np.memmap(path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as exc:
            raise IndexFileError(f"{path} cannot be mapped: {exc}; rebuild or restore it.") from exc
        hasher = hashlib.sha256()
        for start in range(_HEADER_BYTES, size, _HASH_CHUNK):
            hasher.update(raw[start : min(size, start + _HASH_CHUNK)].data)
        if hasher.digest() != digest:
            raise IndexFileError(
                f"{path} is altered: its sha256 does not match the one in its header; "
                f"rebuild or restore the file."
            )
        arrays = []
        for (dt, shape), start in zip(specs, offsets, strict=True):
            nbytes = dt.itemsize * _product(shape)
            view = raw[start : start + nbytes].view(dt).reshape(shape)
            arrays.append(view if mmap else np.array(view))
        meta = (
            index_meta.decode(raw, meta_at, count, str(path))
            if meta_at is not None
            else (None, None)
        )
        del raw
        _check_values(path, arrays, dtype)
        index = cls(dim, dtype)
        index._rows = arrays[0]
        if dtype == "int8":
            index._scales = arrays[1]
        index._ids = arrays[-1]
        index._n = count
        index._fingerprint, index._keys = meta
        if not mmap and index._keys is not None:
            index._keys.extend([])  # copies the keys out of the mapping
        return index


def _product(shape: tuple[int, ...]) -> int:
    out = 1
    for n in shape:
        out *= int(n)
    return out


def _read_head(path: Path) -> tuple[int, bytes]:
    """(file size, first 64 bytes) of a regular file; never blocks on a FIFO.

    Raises:
        IndexFileError: missing, a folder or another non-regular file, unreadable.
    """
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise IndexFileError(
            f"no index file {str(path)!r}; pass a file written by Index.save."
        ) from None
    except IsADirectoryError:
        raise IndexFileError(
            f"{str(path)!r} is a folder, not an index file; pass a file written by Index.save."
        ) from None
    except OSError as exc:
        raise IndexFileError(f"cannot open the index file {str(path)!r}: {exc.strerror}.") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = (
                "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO or device?)"
            )
            raise IndexFileError(
                f"{str(path)!r} is {kind}, not an index file; pass a file written by Index.save."
            )
        try:
            head = os.pread(fd, _HEADER_BYTES, 0)
        except OSError as exc:
            raise IndexFileError(f"cannot read {str(path)!r}: {exc.strerror}.") from None
    finally:
        os.close(fd)
    return st.st_size, head


def _parse_header(path: Path, head: bytes) -> tuple[str, int, int, bytes, int]:
    """(dtype, dim, count, sha256, format version) from the 64-byte header, each checked.

    Raises:
        IndexFileError: not an index file, a newer version or an invalid field.
    """
    if len(head) < _HEADER_BYTES or not head.startswith(_MAGIC):
        raise IndexFileError(
            f"{path} is not a cliprt index file (no {_MAGIC!r} header); pass a file "
            f"written by Index.save."
        )
    _, version, code, dim, count, digest = _HEADER.unpack(head[: _HEADER.size])
    if version > FORMAT_VERSION:
        raise IndexFileError(
            f"{path} has index format version {version}, this cliprt reads up to "
            f"version {FORMAT_VERSION}; upgrade cliprt to load it."
        )
    if version < 1:
        raise IndexFileError(f"{path} has an invalid format version {version}.")
    names = {v: k for k, v in _DTYPE_CODES.items()}
    if code not in names or not 1 <= dim <= MAX_DIM:
        raise IndexFileError(
            f"{path} has an invalid header (dtype code {code}, dim {dim}); the file "
            f"is damaged, rebuild or restore it."
        )
    return names[code], dim, count, digest, version


def _check_values(path: Path, arrays: list[np.ndarray], dtype: str) -> None:
    """Ids >= 0 (-1 means "no hit" in results), rows and int8 scales finite and >= 0,
    checked in chunks so that a large mapped file is never copied whole.

    Raises:
        IndexFileError: the first invalid value, with its row.
    """
    ids = arrays[-1]
    checks = [("id", ids, lambda a: a >= 0)]
    if dtype != "int8":
        checks.append(("row", arrays[0], lambda a: np.isfinite(a).all(axis=1)))
    else:
        checks.append(("scale", arrays[1], lambda a: np.isfinite(a) & (a >= 0)))
    for what, arr, ok_of in checks:
        for start in range(0, arr.shape[0], _CHUNK_ROWS):
            ok = ok_of(arr[start : start + _CHUNK_ROWS])
            if not ok.all():
                row = start + int(np.flatnonzero(~ok)[0])
                raise IndexFileError(
                    f"{path} holds an invalid {what} at row {row} (id {int(ids[row])}): ids "
                    f"must be >= 0 and vectors finite; the file is damaged or crafted, rebuild "
                    f"or restore it."
                )
