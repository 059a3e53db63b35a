"""Hash a model file once, not at every load: a small cache of files already verified.

`manifest.verified_path` reads every byte of a file to check its sha256 (ViT-B/32 int8:
about 0.2 s per load on a fast core, seconds on an edge box's SD card). A file whose
identity and state are unchanged since it was verified need not be read again. The
cache remembers, per file, what the filesystem says about it at verification time:

    (real path, device, inode, size, mtime_ns, ctime_ns, the manifest's sha256)

Why it is safe to trust a match:
- Writing a file changes its mtime and ctime; `touch`/utime can set the mtime back but
  not the ctime (the kernel sets ctime to "now" on every data or metadata change, and
  only a clock change by root could forge it). Replacing a file (rename over it, a
  re-export, a copy) gives it a new inode.
- The recorded sha256 must equal the one the manifest asks for now, so a re-exported
  folder or an edited manifest is verified again.
- A file modified within the timestamp granularity of its verification could keep the
  same stamps (git's "racy" case): files changed less than RACY_S seconds before
  they were hashed are not recorded, so they are hashed again next time.
The checksum guards against corruption, truncated copies and accidental edits, as
before; it never was a signature (whoever can write the files can write the manifest).

The cache lives in $CLIPRT_CACHE_DIR, else $XDG_CACHE_HOME/cliprt, else ~/.cache/cliprt
(not in the model folder, which may be read-only, e.g. a shipped model in
site-packages). CLIPRT_VERIFY=always turns it off. A cache that cannot be written is
ignored: the file is then hashed at every load, as without the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from cliprt.manifest import FileEntry, Variant, confined_path, verified_path

logger = logging.getLogger("cliprt.runtime")

RACY_S = 2.0


def cache_dir() -> Path:
    """Where verification records are kept (see the module docstring)."""
    if os.environ.get("CLIPRT_CACHE_DIR"):
        return Path(os.environ["CLIPRT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cliprt"


def _state(path: Path, sha256: str) -> list:
    st = path.stat()
    return [
        str(path.resolve()),
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        sha256,
    ]


def _record_path(path: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogatepass")).hexdigest()
    return cache_dir() / "verified" / f"{key[:32]}.json"


def checked_path(folder: str | os.PathLike[str], entry: FileEntry | Variant) -> Path:
    """Like manifest.verified_path, but skips reading the file when the cache says this
    very file (same inode, size, mtime and ctime) was verified against the same sha256.

    Raises:
        ModelFolderError: as verified_path (missing, resized or altered file).
    """
    path = confined_path(folder, entry.file)  # a cache hit must not skip the confinement
    if os.environ.get("CLIPRT_VERIFY", "").lower() == "always":
        return verified_path(folder, entry)
    try:
        state = _state(path, entry.sha256)
        record = _record_path(path)
        if json.loads(record.read_text(encoding="utf-8")) == state:
            return path
    except (OSError, ValueError):
        pass  # not cached (or no such file: verified_path says so properly)
    started = time.time()
    checked = verified_path(folder, entry)
    try:
        state = _state(path, entry.sha256)
        if started - state[4] / 1e9 < RACY_S or started - state[5] / 1e9 < RACY_S:
            return checked  # too fresh to trust its stamps next time
        record = _record_path(path)
        record.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".verified-", dir=record.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state, f)
            os.replace(tmp, record)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        logger.debug("cannot record the verification of %s: %s", path, exc)
    return checked
