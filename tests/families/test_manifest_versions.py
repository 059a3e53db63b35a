"""Folders written before format_version 2 keep loading, with the defaults that say what
a version-1 folder meant (CLIP softmax, shortest-edge resize, floor crop, padding to the
longest prompt); an unknown enumerated value is refused."""

from __future__ import annotations

import json
import shutil

import pytest

import cliprt
from cliprt.errors import ModelFolderError
from cliprt.manifest import read_manifest
from cliprt.shipped import shipped_folder


def test_the_shipped_version_1_folder_loads_with_defaults() -> None:
    folder = shipped_folder("shapes")
    assert json.loads((folder / "manifest.json").read_text())["format_version"] == 1
    m = read_manifest(folder)
    assert (m.family, m.scoring, m.logit_bias, m.text_padding, m.padding_side) == (
        "clip",
        "softmax",
        0.0,
        "longest",
        "right",
    )
    pre = m.preprocessing
    assert (pre.resize_mode, pre.crop_rounding, pre.rescale_mode) == (
        "shortest_edge",
        "floor",
        "multiply",
    )
    assert all(v.data_files == () for t in m.towers.values() for v in t.values())
    model = cliprt.load("shapes", precision="fp32", device="cpu")
    probs = model.classify([_red()], ["a red circle", "a blue square"])
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)


def _red():
    from PIL import Image

    return Image.new("RGB", (40, 30), (255, 0, 0))


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        (None, "scoring", "hinge"),
        (None, "padding_side", "middle"),
        ("preprocessing", "resize_mode", "longest"),
    ],
)
def test_unknown_choice_is_refused(tmp_path, where, key, value) -> None:
    folder = tmp_path / "m"
    shutil.copytree(shipped_folder("shapes"), folder)
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    (data if where is None else data[where])[key] = value
    path.write_text(json.dumps(data))
    with pytest.raises(ModelFolderError, match=rf"{key} '{value}' is unknown"):
        read_manifest(folder)
