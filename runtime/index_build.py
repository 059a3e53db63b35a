"""`cliprt index build`: embedding shards (Parquet from `cliprt embed` or cliprt.ray, or
.npy files with their ids sidecar) streamed into one index file that carries each row's
path and the fingerprint of the model that made the rows."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cliprt.errors import InputError
from cliprt.runtime.bulk import check_writable_folder
from cliprt.runtime.fingerprint import ModelFingerprint, check_same_model
from cliprt.runtime.index import Index
from cliprt.runtime.shards import EmbeddingBatch, NpyWithIds, ShardReader, read_npy_with_ids

_READ_ROWS = 65536


@dataclass(frozen=True)
class BuildResult:
    """What `build_index_file` wrote.

    Attributes:
        rows: rows in the index.
        dim: embedding width.
        files: input files read.
        fingerprint: the model that made the rows (None: the inputs do not say).
    """

    rows: int
    dim: int
    files: int
    fingerprint: ModelFingerprint | None


def expand_inputs(inputs: Sequence[Path]) -> list[Path]:
    """Files as given; a folder becomes its ``*.parquet`` files, sorted (names starting
    with "." or "_" are skipped: temporaries, job files).

    Raises:
        InputError: a missing path, or a folder without Parquet files.
    """
    out: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(
                p
                for p in item.glob("*.parquet")
                if p.is_file() and not p.name.startswith((".", "_"))
            )
            if not found:
                raise InputError(f"folder {item} holds no .parquet shards")
            out.extend(found)
        elif item.is_file():
            out.append(item)
        else:
            raise InputError(f"{item}: no such shard file or folder")
    return out


class _Source:
    """One input file: its fingerprint, row count and a stream of its rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._npy: NpyWithIds | None = None
        if path.suffix.lower() == ".npy":
            self._npy = read_npy_with_ids(path)
            self.fingerprint = self._npy.fingerprint
            self.rows = int(self._npy.embeddings.shape[0])
        else:
            self._reader = ShardReader(path)
            self.fingerprint = self._reader.fingerprint
            self.rows = self._reader.rows

    def batches(self) -> Iterator[EmbeddingBatch]:
        if self._npy is not None:
            yield EmbeddingBatch(paths=self._npy.paths, embeddings=self._npy.embeddings)
        else:
            yield from self._reader.batches(_READ_ROWS)


def _same_space(a: ModelFingerprint, b: ModelFingerprint) -> bool:
    # The folder's name (a.model) may differ between nodes; the manifest may not.
    return (a.manifest_sha256, a.precision, a.embed_dim) == (
        b.manifest_sha256,
        b.precision,
        b.embed_dim,
    )


def _common_fingerprint(sources: list[_Source], allow_mismatch: bool) -> ModelFingerprint | None:
    """The one fingerprint of all inputs; None (allowed only with `allow_mismatch`) when
    some input records none or they differ."""
    first = sources[0]
    for src in sources:
        if src.fingerprint is None or first.fingerprint is None:
            if allow_mismatch:
                return None
            where = src.path if src.fingerprint is None else first.path
            raise InputError(
                f"{where} does not record which model made it; pass "
                "--allow-model-mismatch (allow_model_mismatch=True) to index it anyway"
            )
        if _same_space(src.fingerprint, first.fingerprint):
            continue
        if allow_mismatch:
            return None
        check_same_model(src.fingerprint, first.fingerprint, what=str(src.path))
        raise InputError(
            f"{src.path} was embedded at precision {src.fingerprint.precision} but "
            f"{first.path} at {first.fingerprint.precision}; index shards of one precision, "
            "or pass --allow-model-mismatch"
        )
    return first.fingerprint


def build_index_file(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    dtype: str = "fp32",
    allow_model_mismatch: bool = False,
) -> BuildResult:
    """Streams shards into one index file (written atomically); row r gets id r and
    its path as key, in input order.

    Args:
        inputs: Parquet shards, folders of them, or .npy files with ids sidecars.
        output: the index file to write.
        dtype: row storage, "fp32", "fp16" or "int8".
        allow_model_mismatch: accept inputs made by different models, or whose model
            is not recorded (the index then records no fingerprint).

    Raises:
        InputError: an unreadable input, unequal widths, an unwritable output.
        ModelMismatchError: inputs made by different models.
    """
    output = Path(output)
    if output.is_dir():
        raise InputError(f"output {output} is a folder; pass the index file's path")
    if not output.parent.is_dir():
        raise InputError(f"output folder {output.parent} does not exist; create it first")
    check_writable_folder(output.parent, "output folder")
    sources = [_Source(p) for p in expand_inputs([Path(p) for p in inputs])]
    fingerprint = _common_fingerprint(sources, allow_model_mismatch)
    total = sum(s.rows for s in sources)
    index: Index | None = None
    for src in sources:
        for batch in src.batches():
            if not batch.paths:
                continue
            if index is None:
                index = Index(batch.embeddings.shape[1], dtype)
                index._reserve(total)  # one allocation: rows are known from the metadata
            index.add(batch.embeddings, keys=batch.paths)
    if index is None:
        raise InputError("the shards hold no rows; nothing to index")
    if fingerprint is not None and fingerprint.embed_dim != index.dim:
        raise InputError(
            f"the shards say dim {fingerprint.embed_dim} but hold vectors of dim {index.dim}"
        )
    index.fingerprint = fingerprint
    index.save(output)
    return BuildResult(rows=len(index), dim=index.dim, files=len(sources), fingerprint=fingerprint)
