"""SigLIP and fixed-resolution SigLIP 2, end to end against transformers' own pipeline
(SiglipModel + SiglipImageProcessor + the checkpoint's tokenizer): the runtime's
pixels, token ids, embeddings and sigmoid scores."""

from __future__ import annotations

import numpy as np
import pytest

from tests.families.support import TEXTS, odd_images

pytest.importorskip("transformers", reason="the reference needs the export extra")
pytest.importorskip("sentencepiece", reason="SigLIP's tokenizer needs sentencepiece")

ARCHS = ["siglip-tiny", "siglip2-tiny"]


def _reference(folder):
    import torch
    from transformers import AutoTokenizer, SiglipImageProcessor, SiglipModel

    model = SiglipModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    processor = SiglipImageProcessor.from_pretrained(str(folder))
    return torch, model, tokenizer, processor


@pytest.mark.parametrize("arch", ARCHS)
def test_runtime_equals_transformers_siglip(arch, family_checkpoint, family_export) -> None:
    import cliprt

    folder = family_checkpoint(arch)
    torch, model, tokenizer, processor = _reference(folder)
    m = cliprt.load(family_export(arch), precision="fp32", threads=1)
    assert (m.manifest.family, m.manifest.scoring, m.manifest.text_padding) == (
        "siglip",
        "sigmoid",
        "max_length",
    )
    # The encoder layers of both towers fuse (the pooling head is written in MatMuls).
    for tower in ("vision", "text"):
        variant = m.manifest.towers[tower]["fp32"]
        assert variant.attention_fused
        assert variant.fused_ops["Attention"] == m.manifest.arch[tower]["layers"]
    images = odd_images()

    # Pixels: squash resize, no crop, 0.5 mean/std, the processor's resample.
    ref_px = processor(images=images, return_tensors="np")["pixel_values"]
    got_px = m.preprocess(images)
    assert got_px.shape == ref_px.shape
    assert np.abs(got_px - ref_px).max() <= 1e-6

    # Token ids: padded to the fixed length (64), truncated past it.
    ref_ids = tokenizer(
        TEXTS, padding="max_length", truncation=True, max_length=64, return_tensors="np"
    )["input_ids"]
    np.testing.assert_array_equal(m.tokenizer(TEXTS), ref_ids)

    # Embeddings and scores against SiglipModel.forward (no attention mask: SigLIP's
    # training setting, and what the exported text tower takes).
    with torch.inference_mode():
        out = model(input_ids=torch.as_tensor(ref_ids), pixel_values=torch.as_tensor(ref_px))
    ref_img = out.image_embeds.numpy()
    ref_txt = out.text_embeds.numpy()
    img = m.encode_images(images)
    txt = m.encode_texts(TEXTS)
    assert np.abs(img - ref_img).max() < 1e-4
    assert np.abs(txt - ref_txt).max() < 1e-4
    ref_probs = torch.sigmoid(out.logits_per_image).numpy()
    probs = m.classify(images, TEXTS)
    assert np.abs(probs - ref_probs).max() < 1e-4
    assert m.manifest.logit_bias == pytest.approx(float(model.logit_bias.detach()))


def test_sigmoid_scores_do_not_sum_to_one(family_export) -> None:
    import cliprt

    m = cliprt.load(family_export("siglip-tiny"), precision="int8", threads=1)
    probs = m.classify(odd_images()[:2], ["a cat", "a dog", "a car"])
    cos = m.similarity(odd_images()[:2], ["a cat", "a dog", "a car"])
    expected = 1 / (1 + np.exp(-(m.logit_scale * cos + m.logit_bias)))
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)


def test_converted_siglip_tokenizer_equals_siglip_tokenizer(family_checkpoint, tmp_path) -> None:
    """SigLIP's spiece.model converted to tokenizer.json gives SiglipTokenizer's ids
    (lowercase, punctuation dropped, whitespace collapsed, </s> appended)."""
    from transformers import SiglipTokenizer

    from cliprt.export.families.siglip import convert_siglip_tokenizer
    from cliprt.runtime.tokenizer import ClipTokenizer

    slow = SiglipTokenizer.from_pretrained(str(family_checkpoint("siglip-tiny")))
    path = tmp_path / "tokenizer.json"
    convert_siglip_tokenizer(slow).save(str(path))
    texts = [
        *TEXTS,
        "  leading and trailing  ",
        "tab\tand\nnewline",
        "under_score and ▁ odd",
        "MiXeD CaSe? (brackets) [x] {y} <z>",
        "it's a dog's life; e-mail: a@b.c",
    ]
    ref = slow(texts, padding="max_length", truncation=True, max_length=64)["input_ids"]
    got = ClipTokenizer(path, context_length=64, pad_id=slow.pad_token_id, padding="max_length")
    np.testing.assert_array_equal(got(texts), np.asarray(ref))


def test_siglip2_pads_on_the_tokenizers_side(family_checkpoint, family_export) -> None:
    from transformers import AutoTokenizer

    import cliprt

    m = cliprt.load(family_export("siglip2-tiny"), precision="fp32", threads=1)
    tok = AutoTokenizer.from_pretrained(str(family_checkpoint("siglip2-tiny")))
    assert m.manifest.padding_side == tok.padding_side
    ids = m.tokenizer(["a cat"])
    pads = ids[0] == m.manifest.pad_id
    assert pads.sum() > 50
    assert pads[0] if tok.padding_side == "left" else pads[-1]
