"""The locally built checkpoints are real HF CLIP folders that transformers loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from cliprt.errors import ExportError
from cliprt.export.random_checkpoints import RANDOM_ARCHS, parse_random_source


def test_tiny_checkpoint_is_a_complete_hf_folder(tiny_clip_dir: Path) -> None:
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.json",
        "merges.txt",
        "preprocessor_config.json",
    ):
        assert (tiny_clip_dir / name).is_file(), name
    model = CLIPModel.from_pretrained(str(tiny_clip_dir))
    assert model.config.vision_config.num_hidden_layers == 2
    assert CLIPTokenizerFast.from_pretrained(str(tiny_clip_dir))("a photo of a cat").input_ids[
        1:-1
    ] == [320, 1125, 539, 320, 2368]
    proc = CLIPImageProcessor.from_pretrained(str(tiny_clip_dir))
    assert proc.crop_size == {"height": 224, "width": 224}


def test_vit_b32_config_has_the_real_shapes() -> None:
    pytest.importorskip("transformers")
    from cliprt.export.random_checkpoints import random_clip_config

    cfg = random_clip_config("ViT-B-32")
    assert (cfg.vision_config.hidden_size, cfg.vision_config.num_hidden_layers) == (768, 12)
    assert (cfg.vision_config.patch_size, cfg.vision_config.image_size) == (32, 224)
    assert (cfg.text_config.hidden_size, cfg.text_config.num_hidden_layers) == (512, 12)
    assert cfg.projection_dim == 512


def test_random_source_parsing() -> None:
    assert parse_random_source("openai/clip-vit-base-patch32") is None
    assert parse_random_source("random:ViT-B-32") == "ViT-B-32"
    with pytest.raises(ExportError, match="known: random:ViT-B-32"):
        parse_random_source("random:ViT-H-14")
    assert "tiny" in RANDOM_ARCHS
