"""`cliprt embed | classify | search` in-process through cliprt.cli.main."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cliprt.cli import main


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-images")
    for i, color in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (60 + i, 40), color).save(folder / f"{color}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_embed_images_and_texts(
    tiny_model_dir: Path, image_dir: Path, tmp_path: Path, model32
) -> None:
    out = tmp_path / "img.npy"
    assert (
        main(
            [
                "embed",
                str(tiny_model_dir),
                str(image_dir),
                "-o",
                str(out),
                "--precision",
                "fp32",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    emb = np.load(out)
    paths = sorted(image_dir.glob("*.png"))
    assert np.abs(emb - model32.encode_images(paths)).max() <= 1e-6
    out = tmp_path / "txt.npy"
    assert (
        main(
            [
                "embed",
                str(tiny_model_dir),
                "--text",
                "a cat",
                "a dog",
                "-o",
                str(out),
                "--precision",
                "fp32",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert np.abs(np.load(out) - model32.encode_texts(["a cat", "a dog"])).max() <= 1e-6


def test_classify_prints_labels_best_first(
    tiny_model_dir: Path, image_dir: Path, capsys, model32
) -> None:
    labels = ["a red thing", "a green thing", "a blue thing"]
    red = image_dir / "red.png"
    assert (
        main(
            [
                "classify",
                str(tiny_model_dir),
                str(red),
                "--labels",
                *labels,
                "--precision",
                "fp32",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(red)
    probs = model32.classify([red], labels)[0]
    order = np.argsort(-probs, kind="stable")
    for line, j in zip(lines[1:], order, strict=True):
        assert line == f"  {100 * probs[j]:6.2f}%  {labels[j]}"


def test_search_builds_saves_and_reuses_an_index(
    tiny_model_dir: Path, image_dir: Path, tmp_path: Path, capsys
) -> None:
    index = tmp_path / "imgs.cix"
    args = [
        "search",
        str(tiny_model_dir),
        "--query",
        "a red thing",
        "-k",
        "2",
        "--precision",
        "fp32",
    ]
    assert main([*args, "--images", str(image_dir), "--index", str(index)]) == 0
    first = capsys.readouterr().out
    # One atomic file: the paths live inside the index, no .paths.json beside it.
    assert index.is_file() and not (tmp_path / "imgs.cix.paths.json").exists()
    assert first.splitlines()[0] == "a red thing" and len(first.splitlines()) == 3
    assert main([*args, "--index", str(index)]) == 0
    assert capsys.readouterr().out == first


def test_errors_are_one_line_and_exit_1(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["classify", "no-such-model", "x.png", "--labels", "a"]) == 1
    assert "no model folder 'no-such-model'" in capsys.readouterr().err
    assert (
        main(["classify", str(tiny_model_dir), str(tmp_path / "missing.png"), "--labels", "a"]) == 1
    )
    assert "image 0" in capsys.readouterr().err
    assert main(["search", str(tiny_model_dir), "--query", "a"]) == 1
    assert "needs --images" in capsys.readouterr().err
