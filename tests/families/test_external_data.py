"""Towers over 2 GB: ONNX external data kept in the model folder, every data file listed
in the manifest with its sha256 and checked at load. Exercised on a tiny tower with a
1-byte threshold, so every tower and variant takes the external-data path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cliprt.errors import ModelFolderError

pytest.importorskip("torch", reason="exporting needs the export extra")


@pytest.fixture(scope="module")
def external_model(tiny_clip_dir, tmp_path_factory):
    from cliprt.export import export_model

    out = tmp_path_factory.mktemp("external") / "model"
    return export_model(str(tiny_clip_dir), out, external_data_bytes=1)


def test_every_variant_lists_its_data_file(external_model, exported_tiny) -> None:
    import cliprt

    manifest = json.loads((external_model / "manifest.json").read_text())
    assert manifest["format_version"] >= 2
    on_disk = sorted(p.name for p in external_model.glob("*.data"))
    listed = []
    for tower, variants in manifest["towers"].items():
        for precision, v in variants.items():
            assert [d["file"] for d in v["data_files"]] == [f"{tower}.{precision}.onnx.data"]
            listed += [d["file"] for d in v["data_files"]]
    assert sorted(listed) == on_disk
    ref = cliprt.load(exported_tiny.folder, precision="fp32", device="cpu")
    for precision in ("fp32", "fp16", "int8"):
        m = cliprt.load(external_model, precision=precision, device="cpu")
        got = m.encode_texts(["a photo of a cat", "a dog"])
        assert np.abs(got - ref.encode_texts(["a photo of a cat", "a dog"])).max() < 0.05


def test_altered_or_missing_data_file_is_refused(external_model, tmp_path) -> None:
    import cliprt

    folder = tmp_path / "m"
    shutil.copytree(external_model, folder)
    data = folder / "vision.fp32.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(ModelFolderError, match=r"vision.fp32.onnx.data sha256 .* differs"):
        cliprt.load(folder, precision="fp32", device="cpu")
    data.unlink()
    with pytest.raises(ModelFolderError, match=r"vision.fp32.onnx.data is listed .* but missing"):
        cliprt.load(folder, precision="fp32", device="cpu")


def test_a_data_file_the_manifest_does_not_list_is_refused(external_model, tmp_path) -> None:
    import cliprt

    folder = tmp_path / "m"
    shutil.copytree(external_model, folder)
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["towers"]["text"]["int8"]["data_files"] = []
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match=r"external data \['text.int8.onnx.data'\]"):
        cliprt.load(folder, precision="int8", device="cpu")


def test_a_data_file_outside_the_folder_is_refused(external_model, tmp_path) -> None:
    import cliprt

    folder = tmp_path / "m"
    shutil.copytree(external_model, folder)
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["towers"]["text"]["fp32"]["data_files"][0]["file"] = "../elsewhere.data"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match=r"'\.\./elsewhere\.data'"):
        cliprt.load(folder, precision="fp32", device="cpu")
