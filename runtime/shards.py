"""The files a bulk job writes: Parquet shards, or one .npy with an ids sidecar.

Parquet shard (``part-00000.parquet``), one row per embedded image:

    id         int64                         the image's position in the job's file stream
    path       string                        the image's path as the job saw it
    embedding  fixed_size_list<float32>[D]   L2-normalised

The file's schema metadata holds, under the key ``cliprt``, a JSON object with
``format`` (1), ``fingerprint`` (:class:`ModelFingerprint`: manifest sha256, precision,
embed dim) and ``precision``. Shards written by Ray (``cliprt.ray``) have the same
metadata, no id column, one row per input file, and two more columns, ``error`` and
``message`` (strings, null where the file was embedded; the embedding is null where it
was not). Readers skip the failed rows. pyarrow is needed (the ``bulk`` extra).

.npy output: the array (m, D) float32 exactly as ``np.save`` writes it, plus a sidecar
``<file>.ids.jsonl``: a first line ``{"cliprt_npy_ids": 1, "rows", "dim", "npy_sha256",
"fingerprint"}`` then one line ``{"row", "id", "path"}`` per row. The sidecar records the
sha256 of the .npy it describes, so a pair that does not belong together (one of them
replaced, a crash between the two renames) is detected on read, never silently paired.

Every file is written to a temporary name in its folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from cliprt.errors import InputError
from cliprt.runtime.fingerprint import ModelFingerprint

SHARD_FORMAT = 1
META_KEY = b"cliprt"
NPY_IDS_SUFFIX = ".ids.jsonl"
_COPY_BYTES = 16 << 20


def pyarrow() -> Any:
    """The pyarrow module, or an InputError that says how to install it."""
    try:
        import pyarrow as pa
        import pyarrow.compute  # registers pa.compute
        import pyarrow.parquet  # registers pa.parquet
    except ImportError as exc:
        raise InputError(
            'Parquet shards need pyarrow, which is not installed; pip install "cliprt[bulk]"'
        ) from exc
    return pa


@contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A temp file in `path`'s folder, fsynced and renamed onto `path` when the block
    ends without error, removed when it raises."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shard_schema(dim: int, fingerprint: ModelFingerprint | None) -> Any:
    """The Arrow schema of a shard of `dim`-wide embeddings, with cliprt's metadata."""
    pa = pyarrow()
    meta: dict[str, Any] = {"format": SHARD_FORMAT}
    if fingerprint is not None:
        meta["fingerprint"] = fingerprint.to_dict()
        meta["precision"] = fingerprint.precision
    return pa.schema(
        [
            ("id", pa.int64()),
            ("path", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ],
        metadata={META_KEY: json.dumps(meta).encode()},
    )


def failures_schema_fields() -> list[tuple[str, Any]]:
    """The columns in which a shard records the files that failed (Ray's shards)."""
    pa = pyarrow()
    return [("error", pa.string()), ("message", pa.string())]


def shard_table(
    ids: np.ndarray,
    paths: Sequence[str],
    embeddings: np.ndarray,
    fingerprint: ModelFingerprint | None,
) -> Any:
    """An Arrow table of one shard (see the module docstring)."""
    pa = pyarrow()
    dim = embeddings.shape[1]
    flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1), pa.float32())
    return pa.Table.from_arrays(
        [
            pa.array(np.asarray(ids, dtype=np.int64), pa.int64()),
            pa.array(list(paths), pa.string()),
            pa.FixedSizeListArray.from_arrays(flat, dim),
        ],
        schema=shard_schema(dim, fingerprint),
    )


def write_shard(
    path: Path,
    ids: np.ndarray,
    paths: Sequence[str],
    embeddings: np.ndarray,
    fingerprint: ModelFingerprint | None,
) -> None:
    """Writes one Parquet shard atomically (temp file, then rename)."""
    pa = pyarrow()
    table = shard_table(ids, paths, embeddings, fingerprint)
    with atomic_file(path) as f:
        pa.parquet.write_table(table, f)


@dataclass(frozen=True)
class EmbeddingBatch:
    """Rows read from a shard or an .npy: paths and embeddings float32 (n, D)."""

    paths: list[str]
    embeddings: np.ndarray


def _fingerprint_from_metadata(
    meta: dict[bytes, bytes] | None, where: str
) -> ModelFingerprint | None:
    if not meta or META_KEY not in meta:
        return None
    try:
        data = json.loads(meta[META_KEY])
    except ValueError as exc:
        raise InputError(f"{where}: its cliprt metadata is not JSON ({exc})") from exc
    if "fingerprint" not in data:
        return None
    return ModelFingerprint.from_dict(data["fingerprint"], where=where)


class ShardReader:
    """Reads a Parquet shard in batches of rows (constant memory for any shard size).

    Args:
        path: a shard written by ``cliprt embed`` or by ``cliprt.ray``.

    Raises:
        InputError: not a Parquet file, or without the path/embedding columns.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        pa = pyarrow()
        self.path = Path(path)
        try:
            self._file = pa.parquet.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.path}: not a readable Parquet file ({exc})") from exc
        schema = self._file.schema_arrow
        missing = {"path", "embedding"} - set(schema.names)
        if missing:
            raise InputError(
                f"{self.path}: not a cliprt embedding shard (no {', '.join(sorted(missing))} "
                f"column; has {schema.names}); write shards with `cliprt embed` or cliprt.ray"
            )
        field = schema.field("embedding").type
        if not pa.types.is_list(field) and not pa.types.is_fixed_size_list(field):
            raise InputError(f"{self.path}: column 'embedding' is {field}, not a list of float32")
        if not pa.types.is_float32(field.value_type):
            raise InputError(
                f"{self.path}: column 'embedding' holds {field.value_type}, not float32"
            )
        self.fingerprint = _fingerprint_from_metadata(schema.metadata, str(self.path))
        self._has_errors = "error" in schema.names
        self.rows = self._file.metadata.num_rows
        self.dim = field.list_size if pa.types.is_fixed_size_list(field) else None

    def batches(self, rows: int = 65536) -> Iterator[EmbeddingBatch]:
        """Yields the shard's rows in order, at most `rows` at a time."""
        pa = pyarrow()
        columns = ["path", "embedding", *(["error"] if self._has_errors else [])]
        for rb in self._file.iter_batches(batch_size=rows, columns=columns):
            if self._has_errors:
                rb = rb.filter(pa.compute.is_null(rb.column(2)))  # failed files: no row
            col = rb.column(1)
            n = len(col)
            if col.null_count:
                raise InputError(f"{self.path}: column 'embedding' has null rows")
            values = col.flatten().to_numpy(zero_copy_only=False)
            if n and values.size % n:
                raise InputError(f"{self.path}: embeddings of unequal length")
            emb = values.reshape(n, -1 if n else 0).astype(np.float32, copy=False)
            paths = rb.column(0).cast(pa.string()).to_pylist()
            yield EmbeddingBatch(paths=paths, embeddings=emb)

    def failures(self) -> Iterator[dict[str, str]]:
        """The files this shard records as failed ({"path", "error", "message"});
        none for shards of `cliprt embed`, which report failures in failures.jsonl."""
        if not self._has_errors:
            return
        pa = pyarrow()
        for rb in self._file.iter_batches(columns=["path", "error", "message"]):
            bad = rb.filter(pa.compute.is_valid(rb.column(1)))
            yield from bad.to_pylist()


def write_failures_report(
    shards: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]
) -> int:
    """Collects the failed files recorded in shards (e.g. Ray's) into a JSON-lines
    report ({"path", "error", "message", "shard"} a line), written atomically.

    Returns:
        The number of failures.
    """
    count = 0
    with atomic_file(Path(output), "w") as out:
        for shard in shards:
            for row in ShardReader(shard).failures():
                out.write(json.dumps({**row, "shard": os.fspath(shard)}) + "\n")
                count += 1
    return count


# -- .npy with its ids sidecar ---------------------------------------------------------


def npy_sidecar(path: Path) -> Path:
    """The ids sidecar of an .npy output (``<file>.ids.jsonl``)."""
    return path.with_name(path.name + NPY_IDS_SUFFIX)


class NpyWriter:
    """Streams rows into an .npy and its ids sidecar; both appear only on :meth:`commit`.

    Rows go to temporary files as they come (constant memory); commit writes the .npy
    header, copies the rows after it, hashes the result, writes the sidecar and renames
    both into place (sidecar first: the .npy the sidecar names by sha256 is the one that
    follows).
    """

    def __init__(self, path: Path, dim: int, fingerprint: ModelFingerprint | None) -> None:
        self.path = path
        self.dim = dim
        self.fingerprint = fingerprint
        self.rows = 0
        self._raw = tempfile.TemporaryFile(dir=path.parent)  # noqa: SIM115 (closed in commit/close)
        self._ids = tempfile.TemporaryFile(mode="w+", encoding="utf-8", dir=path.parent)  # noqa: SIM115

    def append(self, ids: np.ndarray, paths: Sequence[str], embeddings: np.ndarray) -> None:
        """Adds rows (ids and paths name each row's image)."""
        self._raw.write(np.ascontiguousarray(embeddings, dtype=np.float32).tobytes())
        for i, p in zip(ids.tolist(), paths, strict=True):
            self._ids.write(json.dumps({"row": self.rows, "id": i, "path": p}) + "\n")
            self.rows += 1

    def commit(self) -> None:
        """Writes the .npy and the sidecar atomically into place."""
        digest = hashlib.sha256()
        sidecar = npy_sidecar(self.path)
        fd, npy_tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "wb") as f:
                head = _npy_header(self.rows, self.dim)
                f.write(head)
                digest.update(head)
                self._raw.seek(0)
                while chunk := self._raw.read(_COPY_BYTES):
                    f.write(chunk)
                    digest.update(chunk)
                f.flush()
                os.fsync(f.fileno())
            header = {
                "cliprt_npy_ids": 1,
                "rows": self.rows,
                "dim": self.dim,
                "npy_sha256": digest.hexdigest(),
                "fingerprint": None if self.fingerprint is None else self.fingerprint.to_dict(),
            }
            with atomic_file(sidecar, "w") as side:
                side.write(json.dumps(header) + "\n")
                self._ids.seek(0)
                shutil.copyfileobj(self._ids, side)
            os.replace(npy_tmp, self.path)
        except BaseException:
            Path(npy_tmp).unlink(missing_ok=True)
            raise
        finally:
            self.close()

    def close(self) -> None:
        """Drops the temporary files (without committing)."""
        self._raw.close()
        self._ids.close()


def _npy_header(rows: int, dim: int) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
            "fortran_order": False,
            "shape": (rows, dim),
        },
    )
    return buf.getvalue()


@dataclass(frozen=True)
class NpyWithIds:
    """An .npy output read back with its sidecar."""

    embeddings: np.ndarray
    ids: np.ndarray
    paths: list[str]
    fingerprint: ModelFingerprint | None


def read_npy_with_ids(path: str | os.PathLike[str]) -> NpyWithIds:
    """Reads an .npy written by ``cliprt embed`` and its ids sidecar, checking that they
    belong together.

    Raises:
        InputError: no sidecar, or a sidecar that describes another .npy.
    """
    path = Path(path)
    sidecar = npy_sidecar(path)
    if not sidecar.is_file():
        raise InputError(
            f"{path} has no ids sidecar {sidecar.name}: which row is which image is unknown; "
            "re-run `cliprt embed` to write both"
        )
    with open(sidecar, encoding="utf-8") as f:
        try:
            header = json.loads(f.readline())
            rows = [json.loads(line) for line in f]
        except ValueError as exc:
            raise InputError(f"{sidecar}: not a cliprt ids sidecar ({exc})") from exc
    if not isinstance(header, dict) or header.get("cliprt_npy_ids") != 1:
        raise InputError(f"{sidecar}: not a cliprt ids sidecar (no cliprt_npy_ids header)")
    from cliprt.manifest import sha256_file

    if sha256_file(path) != header.get("npy_sha256"):
        raise InputError(
            f"{path} is not the array {sidecar.name} describes (sha256 differs): one of the "
            "two was replaced or a write was interrupted; re-run `cliprt embed`"
        )
    emb = np.load(path)
    fp = header.get("fingerprint")
    return NpyWithIds(
        embeddings=emb,
        ids=np.asarray([r["id"] for r in rows], dtype=np.int64),
        paths=[r["path"] for r in rows],
        fingerprint=None if fp is None else ModelFingerprint.from_dict(fp, where=str(sidecar)),
    )
