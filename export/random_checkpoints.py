"""Shape-true CLIP checkpoints with random weights, built locally.

`random:ViT-B-32` has the real architecture and cost of openai/clip-vit-base-patch32
(CLIPConfig's defaults, 151.3M parameters) with random weights: right for speed, memory
and parity measurements, meaningless for accuracy. `random:tiny` is a few-layer CLIP
for tests, built in about a second. Each is saved as a real HF checkpoint folder
(config, safetensors, tokenizer files, preprocessor_config.json) so that every later
step runs the same code as for a downloaded checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cliprt.errors import ExportError

RANDOM_PREFIX = "random:"

# text_config / vision_config overrides of CLIPConfig(); {} means CLIPConfig's defaults.
RANDOM_ARCHS: dict[str, dict[str, Any]] = {
    "ViT-B-32": {"text_config": {}, "vision_config": {}, "projection_dim": 512},
    "ViT-B-16": {"text_config": {}, "vision_config": {"patch_size": 16}, "projection_dim": 512},
    "ViT-L-14": {
        "text_config": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_attention_heads": 12,
        },
        "vision_config": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_attention_heads": 16,
            "num_hidden_layers": 24,
            "patch_size": 14,
        },
        "projection_dim": 768,
    },
    "tiny": {
        "text_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
        },
        "vision_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "patch_size": 32,
        },
        "projection_dim": 16,
    },
}


def parse_random_source(source: str) -> str | None:
    """Returns the arch name of a `random:NAME` source, None for any other source.

    Raises:
        ExportError: `random:` with a name that is not in RANDOM_ARCHS.
    """
    if not source.startswith(RANDOM_PREFIX):
        return None
    arch = source[len(RANDOM_PREFIX) :]
    if arch not in all_random_archs():
        known = ", ".join(RANDOM_PREFIX + a for a in all_random_archs())
        raise ExportError(f"unknown random architecture {source!r}; known: {known}")
    return arch


def all_random_archs() -> list[str]:
    """Every random:NAME of every family: CLIP's, then siglip-*, then openclip-*."""
    from cliprt.export.families import openclip, siglip

    return [
        *RANDOM_ARCHS,
        *siglip.RANDOM_ARCHS,
        *(openclip.RANDOM_PREFIX + a for a in openclip.RANDOM_ARCHS),
    ]


def random_clip_config(arch: str) -> Any:
    """The transformers CLIPConfig of a random architecture (see RANDOM_ARCHS)."""
    from transformers import CLIPConfig

    spec = RANDOM_ARCHS[arch]
    return CLIPConfig(
        text_config=dict(spec["text_config"]),
        vision_config=dict(spec["vision_config"]),
        projection_dim=spec["projection_dim"],
    )


def build_random_checkpoint(arch: str, folder: str | Path, *, seed: int = 0) -> Path:
    """Saves a random-weight CLIP of `arch` as a complete HF checkpoint folder.

    Args:
        arch: one of all_random_archs(), e.g. "ViT-B-32", "tiny",
            "siglip-base-patch16-224" or "openclip-ViT-H-14".
        folder: where to write; created if missing.
        seed: torch seed of the weights, so the same call gives the same checkpoint.

    Returns:
        The folder.
    """
    from cliprt.export.families import openclip, siglip

    folder = Path(folder)
    if arch in siglip.RANDOM_ARCHS:
        return siglip.build_random(arch, folder, seed=seed)
    if arch.startswith(openclip.RANDOM_PREFIX):
        return openclip.build_random(arch[len(openclip.RANDOM_PREFIX) :], folder, seed=seed)

    import torch
    from transformers import CLIPImageProcessor, CLIPModel

    from cliprt.export.clip_vocab import save_clip_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    config = random_clip_config(arch)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(str(folder), safe_serialization=True)
    save_clip_tokenizer(folder, model_max_length=config.text_config.max_position_embeddings)
    size = config.vision_config.image_size
    CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    ).save_pretrained(str(folder))
    return folder
