"""The random:* sources have the real checkpoints' shapes: parameter counts of the
configs (built on the meta device, no weights) equal the published models' sizes."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="needs the export extra")


@pytest.mark.parametrize(
    ("arch", "millions"),
    [
        ("siglip-base-patch16-224", 203.2),  # google/siglip-base-patch16-224
        ("siglip-so400m-patch14-384", 878.0),  # google/siglip-so400m-patch14-384
        ("siglip2-base-patch16-224", 375.2),  # google/siglip2-base-patch16-224
    ],
)
def test_siglip_random_archs_have_the_real_sizes(arch, millions) -> None:
    import torch
    from transformers import SiglipModel

    from cliprt.export.families.siglip import random_config

    with torch.device("meta"):
        model = SiglipModel(random_config(arch))
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, rel=2e-3)


@pytest.mark.parametrize(
    ("arch", "millions"),
    [("ViT-B-32", 151.28), ("ViT-H-14", 986.11)],  # open_clip's parameter counts
)
def test_openclip_random_archs_have_the_real_sizes(arch, millions) -> None:
    import torch
    from transformers import CLIPModel

    from cliprt.export.families.openclip import RANDOM_ARCHS, clip_config

    with torch.device("meta"):
        model = CLIPModel(clip_config(RANDOM_ARCHS[arch]))
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, rel=1e-3)


def test_every_random_source_is_known() -> None:
    from cliprt.export.random_checkpoints import all_random_archs, parse_random_source

    for name in (
        "openclip-ViT-B-32",
        "openclip-ViT-H-14",
        "siglip-base-patch16-224",
        "siglip-so400m-patch14-384",
        "siglip2-base-patch16-224",
        "ViT-B-32",
    ):
        assert name in all_random_archs()
        assert parse_random_source("random:" + name) == name
