"""Writing the model folder atomically: everything goes into a hidden staging folder
next to OUT, which is renamed to OUT only once complete. A crash or Ctrl-C leaves
no half-written OUT (at worst a hidden staging folder, removed on the way out)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cliprt.errors import ExportError

_STAGING_PREFIX = ".cliprt-staging-"


def check_out(out: Path, *, force: bool) -> None:
    """Refuses an existing OUT without force; with force, refuses to replace anything but
    an empty folder or a cliprt model folder (one whose manifest.json cliprt reads), so
    that `--force` can never delete a folder of other files (`cliprt export SRC . --force`).

    Raises:
        ExportError: what is wrong with OUT and what to do.
    """
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise ExportError(
            f"{str(out)!r} already exists; pass --force (force=True) to replace it, "
            "or choose another OUT"
        )
    if out.is_symlink() or not out.is_dir():
        what = "a symlink" if out.is_symlink() else "not a folder"
        raise ExportError(
            f"{str(out)!r} exists and is {what}; --force replaces only a cliprt model folder "
            "or an empty folder: remove it yourself or choose another OUT"
        )
    problem = _not_model_folder(out)
    if problem:
        raise ExportError(
            f"{str(out)!r} is not a cliprt model folder ({problem}); --force replaces only a "
            "model folder written by `cliprt export` or an empty folder, never other files: "
            "remove it yourself or choose another OUT"
        )


def _not_model_folder(out: Path) -> str | None:
    """Why `out` (an existing folder) may not be replaced; None if it may."""
    from cliprt.errors import FormatVersionError, ModelFolderError
    from cliprt.manifest import MANIFEST_NAME, read_manifest

    try:
        if not any(out.iterdir()):
            return None
    except OSError as exc:
        return f"cannot list it: {exc.strerror or exc}"
    if not (out / MANIFEST_NAME).is_file():
        return f"it holds files but no {MANIFEST_NAME}"
    try:
        read_manifest(out)
    except FormatVersionError:
        return None  # a newer cliprt's model folder is still a model folder
    except ModelFolderError as exc:
        return f"its {MANIFEST_NAME} is not cliprt's: {str(exc)[:200]}"
    return None


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A fresh hidden folder in OUT's parent (same file system, so the final rename is
    atomic); removed when the block raises (including KeyboardInterrupt).

    Raises:
        ExportError: OUT's parent cannot be created or written.
    """
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{out.name}-", dir=parent))
    except OSError as exc:
        raise ExportError(
            f"cannot write the model folder {str(out)!r}: {exc.strerror or exc} "
            f"in {str(parent)!r}; choose a writable OUT"
        ) from exc
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(staging: Path, out: Path, *, force: bool) -> Path:
    """Renames the complete staging folder to OUT. With force, an existing OUT is
    renamed aside first and deleted only after the new one is in place, so OUT is
    never missing for longer than between two renames.

    Raises:
        ExportError: OUT appeared meanwhile (without force), or a rename failed.
    """
    check_out(out, force=force)
    old = None
    try:
        if out.exists():
            old = out.with_name(f"{_STAGING_PREFIX}{out.name}-old-{uuid.uuid4().hex[:8]}")
            os.replace(out, old)
        os.replace(staging, out)
    except OSError as exc:
        if old is not None and not out.exists():
            os.replace(old, out)  # put the previous model back
        raise ExportError(f"cannot move the new model folder into {str(out)!r}: {exc}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out
