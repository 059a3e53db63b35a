"""OpenCLIP checkpoints (open_clip_config.json + weights, LAION's hub layout), end to
end against open_clip's own model code and tokenizer (see openclip_reference for what
stands in for torchvision)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tests.families.support import TEXTS, odd_images

pytest.importorskip("torch", reason="the reference needs the export extra")
if importlib.util.find_spec("open_clip") is None:  # importing it needs torchvision
    pytest.skip(
        "open_clip_torch is not installed; install it without its torchvision (which breaks "
        "the CPU torch): pip install --no-deps open_clip_torch ftfy regex",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def reference(family_checkpoint):
    import torch
    from safetensors.torch import load_file

    from tests.families.openclip_reference import open_clip_modules

    model_mod, tokenizer_mod = open_clip_modules()
    folder = family_checkpoint("openclip-tiny")
    cfg = json.loads((folder / "open_clip_config.json").read_text())
    model = model_mod.CLIP(**cfg["model_cfg"])
    model.load_state_dict(load_file(str(folder / "open_clip_model.safetensors")))
    return torch, model.eval(), tokenizer_mod.SimpleTokenizer(), cfg


def test_runtime_equals_open_clip(reference, family_export) -> None:
    import cliprt
    from tests.families.openclip_reference import openclip_preprocess

    torch, model, tokenizer, cfg = reference
    m = cliprt.load(family_export("openclip-tiny"), precision="fp32", threads=1)
    pre = m.manifest.preprocessing
    assert (m.manifest.family, m.manifest.scoring, m.manifest.pad_id) == ("openclip", "softmax", 0)
    assert (pre.crop_rounding, pre.rescale_mode) == ("round", "divide")

    images = odd_images()
    size = cfg["model_cfg"]["vision_cfg"]["image_size"]
    mean, std = cfg["preprocess_cfg"]["mean"], cfg["preprocess_cfg"]["std"]
    ref_px = np.stack([openclip_preprocess(im, size, mean, std) for im in images])
    got_px = m.preprocess(images)
    assert np.abs(got_px - ref_px).max() <= 1e-6

    # open_clip pads every prompt to 77 with 0 and truncates keeping EOT last; its
    # cleaning (ftfy, html.unescape) is reproduced for quotes, ligatures, fullwidth
    # and named entities.
    cleaned = [
        "don\u2019t \u201cquote\u201d",
        "\ufb01sh &amp; chips &lt;3",
        "\uff21\uff22\uff23 wide",
    ]
    ref_ids = tokenizer(TEXTS + cleaned, context_length=77).numpy()
    got_ids = m.tokenizer(TEXTS + cleaned)
    width = got_ids.shape[1]
    np.testing.assert_array_equal(got_ids, ref_ids[:, :width])
    assert not ref_ids[:, width:].any()

    with torch.inference_mode():
        ref_img = model.encode_image(torch.as_tensor(ref_px), normalize=True).numpy()
        ref_txt = model.encode_text(torch.as_tensor(ref_ids), normalize=True).numpy()
        scale = float(model.logit_scale.exp())
    assert np.abs(m.encode_images(images) - ref_img).max() < 1e-4
    assert np.abs(m.encode_texts(TEXTS + cleaned) - ref_txt).max() < 1e-4
    ref_probs = torch.softmax(torch.as_tensor(scale * ref_img @ ref_txt.T), dim=1).numpy()
    assert np.abs(m.classify(images, TEXTS + cleaned) - ref_probs).max() < 1e-4


def test_pytorch_bin_weights_load_as_tensors_only(family_checkpoint, tmp_path) -> None:
    """open_clip_pytorch_model.bin is read with torch.load(weights_only=True): a pickle
    that carries code is refused, a plain state dict loads."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from cliprt.errors import ExportError
    from cliprt.export.families.openclip import read_weights

    src = family_checkpoint("openclip-tiny")
    folder = tmp_path / "bin"
    folder.mkdir()
    shutil.copy(src / "open_clip_config.json", folder)
    sd = load_file(str(src / "open_clip_model.safetensors"))
    torch.save(
        {"state_dict": {"module." + k: v for k, v in sd.items()}},
        folder / "open_clip_pytorch_model.bin",
    )
    got = read_weights(folder, "bin")
    assert set(got) == {"module." + k for k in sd}

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, folder / "open_clip_pytorch_model.bin")
    with pytest.raises(ExportError, match="weights_only=True"):
        read_weights(folder, "bin")


def test_openclip_names_map_to_hub_repos() -> None:
    from cliprt.errors import ExportError
    from cliprt.export.families.openclip import openclip_hub_id

    assert openclip_hub_id("hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K") == (
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    )
    assert openclip_hub_id("ViT-B-32/laion2b_s34b_b79k") == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    assert openclip_hub_id("openai/clip-vit-base-patch32") is None  # a transformers hub id
    with pytest.raises(ExportError, match="no pretrained tag 'nope'"):
        openclip_hub_id("ViT-B-32/nope")


def test_hub_name_offline_is_a_clear_error(tmp_path, monkeypatch) -> None:
    from cliprt.errors import ExportError
    from cliprt.export import export_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ExportError, match=r"cannot download the OpenCLIP checkpoint 'laion/"):
        export_model("ViT-B-32/laion2b_s34b_b79k", tmp_path / "out")


@pytest.mark.parametrize(
    ("variant", "custom_text"),
    [({"quick_gelu": True}, False), ({}, True)],
    ids=["quick_gelu", "custom_text"],
)
def test_conversion_equals_open_clip_variants(tmp_path, variant, custom_text) -> None:
    """QuickGELU checkpoints (OpenAI weights in OpenCLIP form) and the CustomTextCLIP
    layout (text tower under `text.`) map onto CLIPModel exactly (PyTorch level)."""
    import torch
    from safetensors.torch import save_file

    from cliprt.export.families import openclip
    from tests.families.openclip_reference import open_clip_modules

    model_mod, _ = open_clip_modules()
    cfg = {**json.loads(json.dumps(openclip.RANDOM_ARCHS["tiny"])), **variant}
    torch.manual_seed(1)
    cls = model_mod.CustomTextCLIP if custom_text else model_mod.CLIP
    ref = cls(**cfg).eval()
    folder = tmp_path / "ckpt"
    folder.mkdir()
    save_file(
        {k: v.contiguous() for k, v in ref.state_dict().items()},
        str(folder / "open_clip_model.safetensors"),
    )
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    ckpt = openclip.load(folder, "variant", tmp_path)
    px = torch.randn(3, 3, 64, 64)
    ids = torch.zeros(2, 77, dtype=torch.int64)  # open_clip runs at the full context
    ids[:, :7] = torch.tensor([49406, 320, 1125, 539, 320, 2368, 49407])
    mask = (ids != 0).long()
    with torch.inference_mode():
        want_img = ref.encode_image(px).numpy()
        want_txt = ref.encode_text(ids).numpy()
    assert np.abs(ckpt.image_embeds(px.numpy()) - want_img).max() < 1e-5
    assert np.abs(ckpt.text_embeds(ids.numpy(), mask.numpy()) - want_txt).max() < 1e-5
