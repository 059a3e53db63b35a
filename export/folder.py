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
    """Refuses an existing OUT without force, and an OUT whose parent cannot hold it.

    Raises:
        ExportError: what is wrong with OUT and what to do.
    """
    if out.exists() and not force:
        raise ExportError(
            f"{str(out)!r} already exists; pass --force (force=True) to replace it, "
            "or choose another OUT"
        )
    if out.exists() and not out.is_dir():
        raise ExportError(
            f"{str(out)!r} exists and is not a folder; remove it or choose another OUT"
        )


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
