"""Writing one file atomically, with the mode a plain open() would give it, and without
leaving temp files behind a killed writer.

The data goes to a hidden temp file beside the target, is fsync'ed, then renamed over
the target: a reader sees the old file or the new one, never half of one. The temp file
is created with mode 0o666 less the umask, as ``open(path, "wb")`` would (mkstemp's 0600
would make a shared index unreadable to the group). Its name records the host and the
writer's pid, ``.NAME.HOST.PID.RANDOM.tmp``; a writer killed with SIGKILL cannot remove
its temp file, so every later write of the same target removes the temp files of
writers that are gone: same host and the pid no longer runs, or another host (a shared
file system) and untouched for ORPHAN_AGE_S.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

__all__ = ["ORPHAN_AGE_S", "atomic_write", "sweep_orphans"]

ORPHAN_AGE_S = 24 * 3600
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_NAME_CHARS = 100  # of the target's name kept in the temp name (NAME_MAX is 255)


def _prefix(path: Path) -> str:
    return f".{path.name[:_NAME_CHARS]}."


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: checks existence, sends nothing
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False  # exists (another user's) or cannot tell: keep
    return False


def sweep_orphans(path: str | os.PathLike[str]) -> list[Path]:
    """Removes the temp files that killed writers of `path` left beside it.

    Returns:
        The paths removed.
    """
    path = Path(path)
    if os.name != "posix":  # os.kill(pid, 0) is not an existence test elsewhere
        return []
    prefix = _prefix(path)
    removed = []
    try:
        entries = list(os.scandir(path.parent or "."))
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        parts = name[len(prefix) : -len(".tmp")].split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        host, pid = parts[0], int(parts[1])
        try:
            if host == _HOST:
                if pid == os.getpid() or not _pid_gone(pid):
                    continue
            elif time.time() - entry.stat(follow_symlinks=False).st_mtime < ORPHAN_AGE_S:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue  # raced with another sweeper, or not ours to remove
    return removed


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yields a binary file whose content replaces `path` when the block ends without an
    error; on an error (or KeyboardInterrupt) `path` is untouched and the temp file gone.

    Raises:
        OSError: the folder is missing or not writable, or the disk is full.
    """
    path = Path(path)
    sweep_orphans(path)
    tmp = path.with_name(f"{_prefix(path)}{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags | getattr(os, "O_BINARY", 0), 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
