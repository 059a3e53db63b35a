"""Index regressions of issue #12: items 1 (SIGFPE), 4 (threads), 8 (foreign errors of
search and load) and 9 (index files: ids, headers, orphaned temp files, file mode)."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cliprt.errors import IndexFileError, InputError
from cliprt.runtime.index import MAX_PADDED_K, Index


def _crash_free(code: str) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a child: a kernel crash (SIGFPE) must not take the test run down."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


# -- item 1: zero queries, empty index -----------------------------------------------------


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "int8"])
def test_zero_queries_and_empty_index_do_not_crash(dtype: str) -> None:
    code = f"""
import numpy as np
from cliprt.runtime.index import Index
full = Index(8, {dtype!r}); full.add(np.eye(8, dtype=np.float32))
s, i = full.search(np.zeros((0, 8), np.float32), k=3)
assert s.shape == (0, 3) and i.shape == (0, 3) and s.dtype == np.float32 and i.dtype == np.int64
empty = Index(8, {dtype!r})
s, i = empty.search(np.ones((2, 8), np.float32), k=4)
assert (i == -1).all() and np.isneginf(s).all() and s.shape == (2, 4)
s, i = empty.search(np.zeros((0, 8), np.float32), k=1)
assert s.shape == (0, 1)
print("fine")
"""
    done = _crash_free(code)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "fine"


# -- item 4: threads bounds ---------------------------------------------------------------


@pytest.mark.parametrize("threads", [5000, 10**6, 2**31, 2**64, True, 2.0, "4", -1, 0])
def test_index_threads_out_of_range_are_input_errors(threads: object) -> None:
    with pytest.raises(InputError, match="threads must be a positive integer, at most 256"):
        Index(8, threads=threads)  # type: ignore[arg-type]


def test_index_threads_in_range_and_numpy_ints() -> None:
    index = Index(4, threads=np.int64(256))
    index.add(np.eye(4, dtype=np.float32))
    assert index.search(np.eye(4, dtype=np.float32), k=1)[1][:, 0].tolist() == [0, 1, 2, 3]


# -- item 8: huge k ----------------------------------------------------------------------


@pytest.mark.parametrize("k", [10**11, 2**63, 2**64 + 5, MAX_PADDED_K + 11])
def test_huge_k_is_an_input_error(k: int) -> None:
    index = Index(4)
    index.add(np.eye(4, dtype=np.float32))
    with pytest.raises(InputError, match="padding cap"):
        index.search(np.eye(4, dtype=np.float32), k=k)


def test_k_up_to_the_padding_cap_is_padded() -> None:
    index = Index(4)
    index.add(np.eye(4, dtype=np.float32))
    scores, ids = index.search(np.eye(4, dtype=np.float32)[:1], k=4 + MAX_PADDED_K)
    assert ids.shape == (1, 4 + MAX_PADDED_K) and ids[0, 0] == 0 and (ids[0, 4:] == -1).all()
    assert np.isneginf(scores[0, 4:]).all()


# -- item 8: Index.load of things that are not index files ---------------------------------


def test_load_missing_folder_fifo_and_non_path(tmp_path: Path) -> None:
    with pytest.raises(IndexFileError, match="no index file"):
        Index.load(tmp_path / "missing.cix")
    with pytest.raises(IndexFileError, match="is a folder"):
        Index.load(tmp_path)
    fifo = tmp_path / "fifo.cix"
    os.mkfifo(fifo)
    with pytest.raises(IndexFileError, match="not a regular file"):
        Index.load(fifo)  # never blocks waiting for a writer
    with pytest.raises(InputError, match="path must be a str"):
        Index.load(42)  # type: ignore[arg-type]


# -- item 9: index files -----------------------------------------------------------------


def _craft(path: Path, *, dtype: int, dim: int, count: int, body: bytes) -> None:
    """An index file whose sha256 is right for `body`: only value checks can refuse it."""
    header = struct.pack(
        "<8sIIQQ32s", b"CLIPRTIX", 1, dtype, dim, count, hashlib.sha256(body).digest()
    )
    path.write_bytes(header.ljust(64, b"\0") + body)


def test_crafted_negative_id_is_refused(tmp_path: Path) -> None:
    index = Index(4)
    index.add(np.eye(4, dtype=np.float32))
    path = tmp_path / "x.cix"
    index.save(path)
    data = bytearray(path.read_bytes())
    ids_at = 64 + 64  # 4 x 4 fp32 rows (64 bytes), then the ids on a 64-byte boundary
    data[ids_at : ids_at + 8] = struct.pack("<q", -1)
    _craft(path, dtype=0, dim=4, count=4, body=bytes(data[64:]))
    with pytest.raises(IndexFileError, match="invalid id at row 0"):
        Index.load(path)


def test_crafted_nan_row_is_refused(tmp_path: Path) -> None:
    rows = np.eye(4, dtype=np.float32)
    rows[2, 1] = np.nan
    body = rows.tobytes() + np.arange(4, dtype=np.int64).tobytes()
    path = tmp_path / "x.cix"
    _craft(path, dtype=0, dim=4, count=4, body=body)
    with pytest.raises(IndexFileError, match="invalid row at row 2"):
        Index.load(path)


def test_overflowing_header_has_a_sane_message(tmp_path: Path) -> None:
    path = tmp_path / "x.cix"
    _craft(path, dtype=0, dim=2**19, count=2**63, body=b"\0" * 64)
    with pytest.raises(IndexFileError) as info:
        Index.load(path)
    message = str(info.value)
    assert "truncated" in message and "-" not in message.split("bytes")[0].split(":")[-1]
    assert str(2**63) in message  # the header's count, as a positive figure
    _craft(path, dtype=0, dim=2**40, count=1, body=b"")
    with pytest.raises(IndexFileError, match="invalid header"):
        Index.load(path)


def test_saved_file_mode_follows_the_umask(tmp_path: Path) -> None:
    index = Index(4)
    index.add(np.eye(4, dtype=np.float32))
    old = os.umask(0o022)
    try:
        index.save(tmp_path / "a.cix")
        os.umask(0o002)
        index.save(tmp_path / "b.cix")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.cix").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.cix").stat().st_mode) == 0o664


def test_kill_9_during_save_leaves_no_temp_file_behind(tmp_path: Path) -> None:
    """A writer killed mid-save leaves its temp file; the next save removes it."""
    target = tmp_path / "big.cix"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import numpy as np, sys\n"
            "from cliprt.runtime.index import Index\n"
            "index = Index(256)\n"
            "index.add(np.random.default_rng(0).standard_normal((40000, 256), np.float32))\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            f"    index.save({str(target)!r})\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".big.cix.*.tmp")):
            assert time.monotonic() < deadline, "the writer never started a save"
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    orphans = list(tmp_path.glob(".big.cix.*.tmp"))
    assert orphans, "the kill should have left a temp file"
    small = Index(4)
    small.add(np.eye(4, dtype=np.float32))
    small.save(target)
    assert list(tmp_path.glob("*.tmp")) == [] and list(tmp_path.glob(".*.tmp")) == []
    assert len(Index.load(target)) == 4


def test_a_live_writers_temp_file_is_kept(tmp_path: Path) -> None:
    from cliprt.runtime.atomic import _HOST, sweep_orphans

    live = tmp_path / f".x.cix.{_HOST}.{os.getppid()}.abcd1234.tmp"
    live.write_bytes(b"in progress")
    assert sweep_orphans(tmp_path / "x.cix") == [] and live.exists()
