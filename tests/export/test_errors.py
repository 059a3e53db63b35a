"""Each user error of the export says what is wrong and what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cliprt.errors import ExportError
from cliprt.export import export_model, parse_precisions
from tests.helpers import leftovers


def _copy(src: Path, dst: Path, *, drop: tuple[str, ...] = ()) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in drop:
            shutil.copy(f, dst / f.name)
    return dst


def test_non_clip_checkpoint_lists_supported(tiny_clip_dir: Path, tmp_path: Path) -> None:
    src = _copy(tiny_clip_dir, tmp_path / "bert")
    cfg = json.loads((src / "config.json").read_text())
    cfg["model_type"] = "bert"
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match=r"'bert' checkpoint.*exports clip"):
        export_model(str(src), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match=r"no config\.json"):
        export_model(str(tmp_path / "empty"), tmp_path / "out")


def test_missing_tokenizer_files(tiny_clip_dir: Path, tmp_path: Path) -> None:
    src = _copy(tiny_clip_dir, tmp_path / "c", drop=("tokenizer.json", "vocab.json", "merges.txt"))
    with pytest.raises(ExportError, match=r"no tokenizer files.*save_pretrained"):
        export_model(str(src), tmp_path / "out")


def test_missing_preprocessor(tiny_clip_dir: Path, tmp_path: Path) -> None:
    src = _copy(tiny_clip_dir, tmp_path / "c", drop=("preprocessor_config.json",))
    with pytest.raises(ExportError, match=r"no preprocessor_config.json.*CLIPImageProcessor"):
        export_model(str(src), tmp_path / "out")


def test_missing_weights(tiny_clip_dir: Path, tmp_path: Path) -> None:
    src = _copy(tiny_clip_dir, tmp_path / "c", drop=("model.safetensors",))
    with pytest.raises(ExportError, match="no weights"):
        export_model(str(src), tmp_path / "out")


@pytest.mark.slow
def test_slow_tokenizer_files_are_enough(tiny_clip_dir: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    src = _copy(tiny_clip_dir, tmp_path / "c", drop=("tokenizer.json",))
    out = export_model(str(src), tmp_path / "out", precisions="fp32")
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert tok.encode("a photo of a cat").ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_unwritable_out(tiny_clip_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="cannot write the model folder"):
        export_model(str(tiny_clip_dir), blocker / "out", precisions="fp32")


def test_out_is_a_file(tiny_clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("x")
    with pytest.raises(ExportError, match="not a folder"):
        export_model(str(tiny_clip_dir), out, precisions="fp32", force=True)
    assert out.read_text() == "x" and leftovers(tmp_path) == []


def test_unknown_precision_lists_known() -> None:
    with pytest.raises(ExportError, match=r"unknown precision 'bf16'; known: fp32, fp16, int8"):
        parse_precisions("fp32,bf16")
    with pytest.raises(ExportError, match="no precision"):
        parse_precisions(" , ")
    assert parse_precisions("INT8, fp32") == ("fp32", "int8")


def test_unknown_random_arch(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"unknown random architecture.*random:ViT-B-32"):
        export_model("random:ViT-H-14", tmp_path / "out")


def test_source_that_is_neither_folder_nor_hub_id(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="neither an existing folder nor a hub id"):
        export_model(str(tmp_path / "no" / "such" / "dir"), tmp_path / "out")


def test_hub_id_offline_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ExportError, match=r"cannot download 'openai/clip-vit-base-patch32'.*network"
    ):
        export_model("openai/clip-vit-base-patch32", tmp_path / "out")


def test_bad_gates_and_opset(tiny_clip_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown precision 'bf16'"):
        export_model(str(tiny_clip_dir), tmp_path / "o", gates={"bf16.min_cosine": 0.9})
    with pytest.raises(ExportError, match="unknown metric 'cos'"):
        export_model(str(tiny_clip_dir), tmp_path / "o", gates={"int8.cos": 0.9})
    with pytest.raises(ExportError, match="not a number"):
        export_model(str(tiny_clip_dir), tmp_path / "o", gates={"int8.min_cosine": "high"})
    with pytest.raises(ExportError, match="opset 9"):
        export_model(str(tiny_clip_dir), tmp_path / "o", opset=9)


def test_unfused_attention_is_an_error(exported_tiny, tmp_path: Path) -> None:
    from cliprt.export.optimize import optimize_tower

    with pytest.raises(ExportError, match=r"3 layers but onnxruntime fused attention in 2"):
        optimize_tower(
            exported_tiny.folder / "vision.fp32.onnx",
            tmp_path / "v.onnx",
            num_heads=4,
            hidden_size=32,
            num_layers=3,
            kind="vision",
        )


@pytest.mark.slow
def test_hub_source_goes_through_the_folder_path(
    tiny_clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No hub is reachable here: stand in for the download only, everything after it
    # is the folder path, and the manifest records the hub id.
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id: str, **kwargs) -> str:
        calls.append((repo_id, kwargs.get("allow_patterns")))
        return str(tiny_clip_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.chdir(tmp_path)
    out = export_model("someone/tiny-clip", tmp_path / "out", precisions="fp32")
    assert calls and calls[0][0] == "someone/tiny-clip" and "*.safetensors" in calls[0][1]
    from cliprt.manifest import read_manifest

    assert read_manifest(out).source == "someone/tiny-clip"
