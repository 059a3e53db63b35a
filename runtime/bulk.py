"""Bulk embedding jobs: a stream of image files -> Parquet shards (or one .npy), with
failures reported per file, constant memory in the number of files, and resume.

A job reads its files from :class:`~cliprt.runtime.sources.ImageSources` in a fixed
order and cuts them into shards of ``shard_size`` files: shard k holds the embeddings of
files ``k*shard_size .. (k+1)*shard_size - 1`` that decoded, the rest go to the failures
report. Memory holds one shard's embeddings (shard_size x D x 4 bytes) and one chunk of
decoded images, whatever the number of files.

Shard folder layout::

    OUT/_cliprt_embed.json        the job: model fingerprint, shard size (resume checks it)
    OUT/part-00000.parquet        finished shards (see cliprt.runtime.shards)
    OUT/_failures/part-00000.jsonl  each finished shard's failures (written before it)
    OUT/failures.jsonl            all failures, one JSON object a line, at the end

A shard is finished when its Parquet file has been renamed into place; ``resume=True``
skips finished shards without decoding their files and redoes the rest.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from cliprt.errors import InputError
from cliprt.runtime.bulk_progress import JobProgress
from cliprt.runtime.failures import ImageFailure, check_errors_mode
from cliprt.runtime.fingerprint import ModelFingerprint, check_same_model, fingerprint_of
from cliprt.runtime.shards import NpyWriter, atomic_file, npy_sidecar, pyarrow, write_shard

JOB_FILE = "_cliprt_embed.json"
FAILURES_DIR = "_failures"
FAILURES_REPORT = "failures.jsonl"
_SHARD_RE = re.compile(r"^part-(\d{5,})\.parquet$")
DEFAULT_SHARD_SIZE = 10_000
# Images per encode_images call: decoding overlaps the tower within a call.
_CHUNK_BATCHES = 8


@dataclass
class EmbedSummary:
    """What a job did.

    Attributes:
        files: files in the stream.
        embedded: rows written by this run.
        failed: files that could not be embedded in this run.
        skipped_shards: finished shards a resumed job did not redo.
        written: the files this run wrote (shards or the .npy and its sidecar).
        failures_report: the JSON-lines failures report.
        seconds: wall time of the run (s).
    """

    files: int = 0
    embedded: int = 0
    failed: int = 0
    skipped_shards: int = 0
    written: list[Path] = field(default_factory=list)
    failures_report: Path | None = None
    seconds: float = 0.0


def check_writable_folder(folder: Path, what: str) -> None:
    """Creates `folder` if needed and proves a file can be created in it.

    Raises:
        InputError: it is a file, or it cannot be created or written.
    """
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{what} {folder} exists and is not a folder; pass a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{what} {folder} is not writable ({exc}); pick another path") from exc


def shard_name(k: int) -> str:
    """The file name of shard `k`."""
    return f"part-{k:05d}.parquet"


def finished_shards(folder: Path) -> set[int]:
    """Indices of the shards renamed into place in `folder`."""
    if not folder.is_dir():
        return set()
    return {int(m.group(1)) for p in folder.iterdir() if (m := _SHARD_RE.match(p.name))}


def _chunks(items: Iterator[Path], n: int) -> Iterator[list[Path]]:
    while chunk := list(islice(items, n)):
        yield chunk


def _embed_chunk(
    model: Any, paths: list[Path], first: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray, list[ImageFailure]]:
    """Embeds paths (stream positions first..); returns (positions, embeddings, failures)."""
    res = model.encode_images(paths, batch_size=batch_size, errors="skip")
    # encode_images numbers items within this chunk; the job numbers them in its stream.
    failures = [
        ImageFailure(
            index=first + f.index,
            path=f.path,
            error=f.error,
            message=f.message.replace(f"image {f.index} (", f"image {first + f.index} (", 1),
        )
        for f in res.failures
    ]
    return res.indices + first, res.embeddings, failures


def _raise_first(failures: list[ImageFailure]) -> None:
    if failures:
        f = failures[0]
        raise InputError(
            f"file {f.index} ({f.path}) could not be embedded: {f.error}: {f.message} "
            "(--on-error skip / errors='skip' reports bad files and goes on)"
        )


def _write_jsonl(path: Path, failures: Iterable[ImageFailure]) -> None:
    with atomic_file(path, "w") as f:
        for failure in failures:
            f.write(json.dumps(failure.to_dict()) + "\n")


class ShardedJob:
    """Embeds a stream of image files into a folder of Parquet shards.

    Args:
        folder: the output folder (created if missing).
        shard_size: files per shard.
        resume: skip finished shards of an earlier run of the same job.
        failures_report: where the failures report goes (default OUT/failures.jsonl).

    Call :meth:`check` before loading the model (a folder that cannot be written, or
    an earlier job's shards without ``resume``, fail before any work), then :meth:`run`.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        shard_size: int = DEFAULT_SHARD_SIZE,
        resume: bool = False,
        failures_report: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise InputError(f"shard_size must be a positive int, got {shard_size!r}")
        self.folder = Path(folder)
        self.shard_size = shard_size
        self.resume = resume
        self.failures_report = (
            Path(failures_report) if failures_report else self.folder / FAILURES_REPORT
        )

    def check(self) -> None:
        """Fails before any work on an output that cannot be written or is not empty.

        Raises:
            InputError: see above; pyarrow missing.
        """
        pyarrow()
        check_writable_folder(self.folder, "output folder")
        check_writable_folder(self.failures_report.parent, "failures report folder")
        if self.failures_report.is_dir():
            raise InputError(
                f"failures report {self.failures_report} is a folder; pass a file path"
            )
        done = finished_shards(self.folder)
        if not self.resume and (done or (self.folder / JOB_FILE).exists()):
            raise InputError(
                f"output folder {self.folder} already holds a job's shards ({len(done)} finished); "
                "pass --resume (resume=True) to finish that job, or an empty folder"
            )

    def _prepare(self, fp: ModelFingerprint) -> set[int]:
        job_path = self.folder / JOB_FILE
        job = {"format": 1, "fingerprint": fp.to_dict(), "shard_size": self.shard_size}
        if job_path.exists():
            try:
                old = json.loads(job_path.read_text(encoding="utf-8"))
                old_fp = ModelFingerprint.from_dict(old["fingerprint"], where=str(job_path))
                old_size = int(old["shard_size"])
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    f"{job_path}: not a cliprt job file ({exc}); use an empty folder"
                ) from exc
            check_same_model(old_fp, fp, what=f"the job in {self.folder}")
            if old_fp.precision != fp.precision:
                raise InputError(
                    f"the job in {self.folder} ran at precision {old_fp.precision}, this run at "
                    f"{fp.precision}; resume with --precision {old_fp.precision}"
                )
            if old_size != self.shard_size:
                raise InputError(
                    f"the job in {self.folder} cut shards of {old_size} files, this run "
                    f"{self.shard_size}; resume with --shard-size {old_size}"
                )
        else:
            with atomic_file(job_path, "w") as f:
                json.dump(job, f)
        (self.folder / FAILURES_DIR).mkdir(exist_ok=True)
        return finished_shards(self.folder) if self.resume else set()

    def run(
        self,
        model: Any,
        files: Iterable[Path],
        *,
        total: int | None = None,
        batch_size: int = 32,
        errors: str = "skip",
        progress: bool = True,
        log_every_s: float = 30.0,
    ) -> EmbedSummary:
        """Embeds `files` with `model` into the folder.

        Args:
            model: a loaded ClipModel.
            files: the stream of image paths (the same order on every run of a job).
            total: how many files `files` yields, for the progress ETA (None: unknown).
            batch_size: images per vision tower call.
            errors: "skip" reports bad files and goes on; "raise" stops at the first
                one (shards finished before it stay, resumable).
            progress: draw a progress bar / log lines on stderr.
            log_every_s: seconds between log lines when stderr is not a terminal.

        Raises:
            InputError: errors="raise" and a file could not be embedded.
            ModelMismatchError: resuming a job with another model.
        """
        raise_first = check_errors_mode(errors) == "raise"
        start = time.perf_counter()
        fp = fingerprint_of(model)
        done = self._prepare(fp)
        summary = EmbedSummary(failures_report=self.failures_report)
        initial = 0
        if total is not None:
            initial = sum(max(0, min(self.shard_size, total - k * self.shard_size)) for k in done)
        bar = JobProgress(total, initial=initial, enabled=progress, log_every_s=log_every_s)
        chunk = batch_size * _CHUNK_BATCHES
        try:
            for k, shard_files in enumerate(_chunks(iter(files), self.shard_size)):
                first = k * self.shard_size
                summary.files += len(shard_files)
                if k in done:
                    summary.skipped_shards += 1
                    continue
                ids, embs, failures = [], [], []
                for j, part in enumerate(_chunks(iter(shard_files), chunk)):
                    i, e, f = _embed_chunk(model, part, first + j * chunk, batch_size)
                    if raise_first:
                        _raise_first(f)
                    ids.append(i)
                    embs.append(e)
                    failures.extend(f)
                    bar.update(len(part))
                ids_arr = np.concatenate(ids)
                paths = [os.fspath(shard_files[i - first]) for i in ids_arr.tolist()]
                # Failures first: a shard in place always has its failures beside it.
                _write_jsonl(self.folder / FAILURES_DIR / f"part-{k:05d}.jsonl", failures)
                path = self.folder / shard_name(k)
                write_shard(path, ids_arr, paths, np.concatenate(embs), fp)
                summary.written.append(path)
                summary.embedded += len(ids_arr)
                summary.failed += len(failures)
        finally:
            bar.close()
        self._write_report()
        summary.seconds = time.perf_counter() - start
        return summary

    def _write_report(self) -> None:
        parts = sorted((self.folder / FAILURES_DIR).glob("part-*.jsonl"))
        with atomic_file(self.failures_report, "w") as out:
            for part in parts:
                out.write(part.read_text(encoding="utf-8"))


class NpyJob:
    """Embeds a stream of image files into one .npy and its ids sidecar
    (``<file>.ids.jsonl``, see :mod:`cliprt.runtime.shards`), written atomically at the
    end. Memory stays constant: rows are streamed to a temporary file."""

    def __init__(
        self, path: str | os.PathLike[str], *, failures_report: str | os.PathLike[str] | None = None
    ) -> None:
        self.path = Path(path)
        self.failures_report = (
            Path(failures_report)
            if failures_report
            else self.path.with_name(self.path.name + ".failures.jsonl")
        )

    def check(self) -> None:
        """Fails before any work on an output path that cannot be written.

        Raises:
            InputError: the path is a folder, or its folder is missing or not writable.
        """
        for path, what in ((self.path, "output"), (self.failures_report, "failures report")):
            if path.is_dir():
                raise InputError(f"{what} {path} is a folder; pass a file path")
            if not path.parent.is_dir():
                raise InputError(f"{what} folder {path.parent} does not exist; create it first")
            check_writable_folder(path.parent, f"{what} folder")
        for path in (self.path, npy_sidecar(self.path)):
            if path.exists() and not os.access(path, os.W_OK):
                raise InputError(f"output {path} exists and is not writable")

    def run(
        self,
        model: Any,
        files: Iterable[Path],
        *,
        total: int | None = None,
        batch_size: int = 32,
        errors: str = "skip",
        progress: bool = True,
        log_every_s: float = 30.0,
    ) -> EmbedSummary:
        """As :meth:`ShardedJob.run`, into the .npy (nothing is written if it raises)."""
        raise_first = check_errors_mode(errors) == "raise"
        start = time.perf_counter()
        fp = fingerprint_of(model)
        writer = NpyWriter(self.path, model.embed_dim, fp)
        summary = EmbedSummary(failures_report=self.failures_report)
        failures: list[ImageFailure] = []
        bar = JobProgress(total, enabled=progress, log_every_s=log_every_s)
        try:
            first = 0
            for part in _chunks(iter(files), batch_size * _CHUNK_BATCHES):
                ids, emb, f = _embed_chunk(model, part, first, batch_size)
                if raise_first:
                    _raise_first(f)
                writer.append(ids, [os.fspath(part[i - first]) for i in ids.tolist()], emb)
                failures.extend(f)
                first += len(part)
                bar.update(len(part))
            summary.files = first
            if first == 0:
                raise InputError("no image files to embed")
            writer.commit()
        finally:
            writer.close()
            bar.close()
        _write_jsonl(self.failures_report, failures)
        summary.embedded, summary.failed = writer.rows, len(failures)
        summary.written = [self.path, npy_sidecar(self.path)]
        summary.seconds = time.perf_counter() - start
        return summary
