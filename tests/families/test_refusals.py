"""Checkpoints cliprt does not export are refused with a typed error that names the
family it saw, the supported ones, and what to do."""

from __future__ import annotations

import json

import pytest

from cliprt.errors import ExportError, UnsupportedCheckpointError

pytest.importorskip("torch", reason="exporting needs the export extra")


def _hf_folder(tmp_path, model_type: str):
    folder = tmp_path / model_type
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


@pytest.mark.parametrize(
    ("model_type", "what", "todo"),
    [
        ("chinese_clip", "ChineseCLIP", "not supported yet"),
        ("altclip", "AltCLIP", "not supported yet"),
        ("siglip2", "NaFlex", "google/siglip2-base-patch16-224"),
        ("blip", "'blip' checkpoint", "convert it"),
    ],
)
def test_other_families_are_refused_by_name(tmp_path, model_type, what, todo) -> None:
    from cliprt.export import export_model

    with pytest.raises(UnsupportedCheckpointError) as info:
        export_model(str(_hf_folder(tmp_path, model_type)), tmp_path / "out")
    message = str(info.value)
    assert f"'{model_type}' checkpoint" in message
    assert what in message and todo in message
    for family in ("clip (", "openclip (", "siglip ("):
        assert family in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c["vision_cfg"].update(timm_model_name="convnext_base"), "timm vision tower"),
        (lambda c: c["text_cfg"].update(hf_model_name="xlm-roberta-base"), "Hugging Face text"),
        (lambda c: c.update(init_logit_bias=-10), "SigLIP weights"),
        (lambda c: c["vision_cfg"].update(attentional_pool=True), "attentional_pool"),
        (lambda c: c["text_cfg"].update(pool_type="last"), "pool_type"),
    ],
)
def test_openclip_towers_cliprt_cannot_map_are_refused(tmp_path, change, match) -> None:
    from cliprt.export import export_model
    from cliprt.export.families.openclip import RANDOM_ARCHS

    folder = tmp_path / "oc"
    folder.mkdir()
    cfg = json.loads(json.dumps(RANDOM_ARCHS["tiny"]))
    change(cfg)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    (folder / "open_clip_model.safetensors").write_bytes(b"")
    with pytest.raises(UnsupportedCheckpointError, match=match) as info:
        export_model(str(folder), tmp_path / "out")
    assert "OpenCLIP ViT" in str(info.value)


def test_openclip_folder_without_weights_says_so(tmp_path) -> None:
    from cliprt.export import export_model

    folder = tmp_path / "oc"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}}))
    with pytest.raises(ExportError, match=r"no weights.*open_clip_model\.safetensors"):
        export_model(str(folder), tmp_path / "out")


def test_openclip_longest_resize_is_refused() -> None:
    from cliprt.export.families.openclip import preprocessing

    with pytest.raises(UnsupportedCheckpointError, match="resize_mode='longest'"):
        preprocessing({"resize_mode": "longest"}, 224, "x")


def test_unknown_family_lists_the_known() -> None:
    from cliprt.export.families import family_module

    with pytest.raises(UnsupportedCheckpointError, match="supported: clip, openclip, siglip"):
        family_module("eva")
