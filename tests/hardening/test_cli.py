"""CLI regressions of issue #12: items 2 (export --force deletes only model folders) and
7 (output paths, outputs checked before the work, typed messages, no tracebacks)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cliprt.errors import ExportError
from tests.hardening.support import run_cli

FAST = ("--device", "cpu", "--precision", "fp32", "--threads", "1", "-q")


def _typed(done: subprocess.CompletedProcess[str], command: str, match: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.startswith(f"cliprt {command}: error:"), done.stderr
    assert match in done.stderr, done.stderr


# -- item 7: output paths ------------------------------------------------------------------


def test_output_is_written_exactly_where_asked(tmp_path: Path) -> None:
    done = run_cli("embed", "shapes", "--text", "a red circle", "-o", "x.txt", *FAST, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]
    assert np.load(tmp_path / "x.txt").shape == (1, 64)
    assert "to x.txt" in done.stderr


def test_dash_is_stdout(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cliprt.cli",
            "embed",
            "shapes",
            "--text",
            "a",
            "b",
            "-o",
            "-",
            *FAST,
        ],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    (tmp_path / "got.npy").write_bytes(done.stdout)
    assert np.load(tmp_path / "got.npy").shape == (2, 64)
    assert list(tmp_path.iterdir()) == [tmp_path / "got.npy"]  # no "-.npy"


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (".", "is a folder"),
        ("sub/", "is a folder"),
        ("missing/x.npy", "does not exist"),
        ("a-file/x.npy", "does not exist"),
    ],
)
def test_bad_output_is_refused_before_any_work(tmp_path: Path, output: str, match: str) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a-file").write_text("x")
    # The model does not exist: the output error coming first proves the order.
    done = run_cli("embed", "no-such-model", "--text", "a", "-o", output, cwd=tmp_path)
    _typed(done, "embed", match)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        done = run_cli("embed", "no-such-model", "--text", "a", "-o", str(ro / "x.npy"))
        _typed(done, "embed", "cannot be written")
    finally:
        ro.chmod(0o700)


def test_search_index_output_checked_before_work(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(tmp_path / "img" / "a.png")
    done = run_cli(
        "search", "no-such-model", "--images", "img", "--index", "nowhere/x.cix", "--query", "a",
        cwd=tmp_path,
    )  # fmt: skip
    _typed(done, "search", "--index")


# -- item 7: typed messages, no tracebacks --------------------------------------------------


def test_huge_k_is_typed(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(tmp_path / "a.png")
    done = run_cli(
        "search", "shapes", "--images", "a.png", "--query", "a red circle", "-k", "100000000000",
        *FAST, cwd=tmp_path,
    )  # fmt: skip
    _typed(done, "search", "padding cap")
    _typed(run_cli("search", "shapes", "--query", "a", "-k", "0", *FAST), "search", "-k must be")


def test_lone_surrogate_text_is_typed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cliprt.cli", "embed", "shapes", "--text", b"caf\xe9", "-o",
         "x.npy", *FAST],
        capture_output=True, text=True, errors="replace", timeout=120, cwd=tmp_path,
    )  # fmt: skip
    _typed(done, "embed", "text 0")
    assert "not valid Unicode" in done.stderr and not (tmp_path / "x.npy").exists()


def test_bogus_isa_spares_text_commands_and_types_search(tmp_path: Path) -> None:
    env = {"CLIPRT_ISA": "bogus"}
    done = run_cli("embed", "shapes", "--text", "a", "-o", "x.npy", *FAST, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(tmp_path / "a.png")
    done = run_cli(
        "search", "shapes", "--images", "a.png", "--query", "a", *FAST, env=env, cwd=tmp_path
    )
    _typed(done, "search", "CLIPRT_ISA")


@pytest.mark.parametrize("top", ["0", "-2"])
def test_classify_top_below_one_is_refused(tmp_path: Path, top: str) -> None:
    done = run_cli("classify", "shapes", "a.png", "--labels", "a", "b", "--top", top, *FAST)
    _typed(done, "classify", "--top must be at least 1")


@pytest.mark.parametrize("threads", ["5000", "1000000", "2147483648", "0"])
def test_cli_threads_out_of_range(threads: str) -> None:
    args = ("embed", "shapes", "--text", "a", "-o", "-", "--device", "cpu", "--threads", threads)
    _typed(run_cli(*args), "embed", "threads must be a positive integer")


def test_bench_out_without_matplotlib_fails_before_the_run(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])
    }
    done = run_cli(
        "bench", "shapes", "--no-reference", "--out", str(tmp_path / "out"), env=env, timeout=120
    )
    _typed(done, "bench", "matplotlib")


# -- item 2: export --force ------------------------------------------------------------------


def _user_files(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "thesis.tex").write_text("years of work")
    (folder / "data").mkdir()
    (folder / "data" / "x.csv").write_text("1,2")


def test_force_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    from cliprt.export.folder import check_out

    _user_files(tmp_path / "work")
    with pytest.raises(ExportError, match="not a cliprt model folder"):
        check_out(tmp_path / "work", force=True)
    bad = tmp_path / "bad-manifest"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"hello": 1}')
    with pytest.raises(ExportError, match="not a cliprt model folder"):
        check_out(bad, force=True)
    os.symlink(tmp_path / "work", tmp_path / "link")
    with pytest.raises(ExportError, match="symlink"):
        check_out(tmp_path / "link", force=True)
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty", force=True)  # an empty folder may be replaced


def test_force_accepts_a_model_folder(shapes_copy: Path) -> None:
    from cliprt.export.folder import check_out

    check_out(shapes_copy, force=True)


def test_export_dot_force_keeps_the_current_folder(tmp_path: Path) -> None:
    _user_files(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    done = run_cli("export", "random:tiny", ".", "--force", "-q", cwd=tmp_path, timeout=300)
    _typed(done, "export", "not a cliprt model folder")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_publish_rechecks_before_replacing(tmp_path: Path, shapes_copy: Path) -> None:
    """A folder that turned into user files during the export is not replaced either."""
    from cliprt.export.folder import publish

    staging = tmp_path / "staging"
    shutil.copytree(shapes_copy, staging)
    out = tmp_path / "out"
    _user_files(out)
    with pytest.raises(ExportError, match="not a cliprt model folder"):
        publish(staging, out, force=True)
    assert (out / "thesis.tex").exists()
