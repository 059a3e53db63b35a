"""Argument errors of `cliprt bench`: argparse's exit 2 for malformed options, a
CliprtError (exit 1, one line saying what to do) for a MODEL that cannot be used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cliprt.bench.cli import main as bench_main
from cliprt.cli import main as cliprt_main


@pytest.fixture(autouse=True)
def _restore_omp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bench sets OMP_WAIT_POLICY for its run and restores it; start every test without.
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["m", "--batch", "0"],
        ["m", "--batch", "1,x"],
        ["m", "--precision", "fp64"],
        ["m", "--towers", "audio"],
        ["m", "--device", "tpu"],
        ["m", "--threads", "0"],
        ["m", "--repeats", "0"],
        ["m", "--seq-len", "2"],
        ["m", "--wait-policy", "lazy"],
        ["m", "--reference", "ckpt", "--no-reference"],
        ["m", "--unknown"],
    ],
)
def test_malformed_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_main(args)
    assert exc.value.code == 2
    assert "cliprt bench: error:" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cliprt_main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--no-reference" in out and "random:ViT-B-32" in out


def test_model_that_is_neither_folder_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    assert cliprt_main(["bench", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "neither a cliprt model folder" in err and "random:ViT-B-32" in err


def test_missing_precision(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "no-fp16"
    shutil.copytree(tiny_model_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for variants in manifest["towers"].values():
        (folder / variants.pop("fp16")["file"]).unlink()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    rc = cliprt_main(["bench", str(folder), "--precision", "fp16", "--no-reference", "--quiet"])
    assert rc == 1
    assert "no fp16 towers" in capsys.readouterr().err


def test_source_not_available_asks_for_reference(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "moved"
    shutil.copytree(tiny_model_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["source"] = str(tmp_path / "gone-checkpoint")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert cliprt_main(["bench", str(folder), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--reference" in err and "--no-reference" in err


def test_seq_len_beyond_context(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cliprt_main(["bench", str(tiny_model_dir), "--seq-len", "78", "--no-reference", "--quiet"])
    assert rc == 1
    assert "context length 77" in capsys.readouterr().err


def test_topk_is_the_kernel_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cliprt_main(["bench", "topk", "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out


def test_unloadable_reference(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty-checkpoint"
    empty.mkdir()
    args = ["bench", str(tiny_model_dir), "--reference", str(empty), "--towers", "text"]
    assert cliprt_main([*args, "--batch", "1", "--cold-repeats", "0", "--quiet"]) == 1
    assert "cannot be loaded" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.usefixtures("bench_extra")
def test_shipped_model_by_name(tmp_path: Path) -> None:
    """`cliprt bench shapes` finds the shipped model folder as cliprt.load does."""
    rc = cliprt_main(
        [
            "bench",
            "shapes",
            "--towers",
            "text",
            "--batch",
            "1",
            "--repeats",
            "1",
            "--cold-repeats",
            "0",
            "--no-reference",
            "--quiet",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert "shapes" in json.dumps(report)
