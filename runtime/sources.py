"""The image files of a bulk job, as a stream: folders, glob patterns and file lists.

The stream is deterministic (folders are walked in sorted order, glob matches are
sorted) so that a resumed job assigns every file to the same shard as the first run, and
lazy: a folder or a file list is never held whole in memory (a glob pattern's matches
are, as names only).
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cliprt.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_GLOB_CHARS = frozenset("*?[")


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()  # os.walk descends in this (now sorted) order
        for name in sorted(files):
            if name.lower().endswith(IMAGE_SUFFIXES):
                yield Path(root) / name


def _lines(files_from: str) -> Iterator[Path]:
    stream = sys.stdin if files_from == "-" else open(files_from, encoding="utf-8")  # noqa: SIM115
    try:
        for line in stream:
            line = line.rstrip("\r\n")
            if line.strip():
                yield Path(line)
    finally:
        if stream is not sys.stdin:
            stream.close()


@dataclass(frozen=True)
class ImageSources:
    """Where a job's images come from.

    Attributes:
        inputs: files (taken as given, even if missing: the job reports them as
            failures), folders (walked recursively for image suffixes) and glob
            patterns (``photos/**/*.jpg``; ``**`` recurses).
        files_from: a text file with one path per line ("-": stdin, read once).
    """

    inputs: Sequence[str] = ()
    files_from: str | None = None

    def check(self) -> None:
        """Fails early on what cannot work (before any model is loaded).

        Raises:
            InputError: nothing given, a missing --files-from file, a folder or pattern
                that matches no image file.
        """
        if not self.inputs and self.files_from is None:
            raise InputError("no images given: pass files, folders, glob patterns or --files-from")
        if self.files_from not in (None, "-") and not Path(self.files_from).is_file():
            raise InputError(f"--files-from {self.files_from!r}: no such file")
        for item in self.inputs:
            if Path(item).is_dir():
                if next(_walk(Path(item)), None) is None:
                    raise InputError(
                        f"folder {item!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})"
                    )
            elif _is_pattern(item) and next(_glob(item), None) is None:
                raise InputError(f"pattern {item!r} matches no files")

    def __iter__(self) -> Iterator[Path]:
        for item in self.inputs:
            path = Path(item)
            if path.is_dir():
                yield from _walk(path)
            elif _is_pattern(item):
                yield from _glob(item)
            else:
                yield path
        if self.files_from is not None:
            yield from _lines(self.files_from)

    def count(self) -> int | None:
        """How many files the stream yields (a walk, no decoding), or None when it
        cannot be known without consuming it (a file list on stdin)."""
        if self.files_from == "-":
            return None
        return sum(1 for _ in self)


def _is_pattern(item: str) -> bool:
    return not Path(item).exists() and any(c in item for c in _GLOB_CHARS)


def _glob(pattern: str) -> Iterator[Path]:
    return (Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if os.path.isfile(p))
