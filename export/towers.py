"""The PyTorch side of the export: load a CLIP checkpoint and cut it into the two
towers that become ONNX graphs (and that every exported variant is validated against).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cliprt.errors import ExportError


@dataclass(frozen=True)
class Towers:
    """A loaded CLIP checkpoint split into its two projected towers.

    `vision` maps pixel_values [b, 3, H, W] float32 -> image_embeds [b, D];
    `text` maps input_ids [b, s] int64 -> text_embeds [b, D]. Neither normalises.
    """

    model: Any  # transformers.CLIPModel
    vision: Any  # transformers.CLIPVisionModelWithProjection sharing model's weights
    text: Any  # transformers.CLIPTextModelWithProjection sharing model's weights
    eos_id: int


def load_towers(folder: str | Path, *, eos_id: int) -> Towers:
    """Loads a local HF CLIP checkpoint folder in eval mode with eager attention.

    Args:
        folder: a folder with config.json and the weights.
        eos_id: the tokenizer's end-of-text id; the text tower pools at its FIRST
            occurrence in each row.

    Raises:
        ExportError: the weights cannot be loaded.
    """
    import torch
    from transformers import (
        CLIPModel,
    )

    try:
        # Eager attention: the SDPA graph defeats onnxruntime's Attention fusion.
        model = CLIPModel.from_pretrained(
            str(folder), attn_implementation="eager", dtype=torch.float32
        ).eval()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"cannot load the CLIP weights in {str(folder)!r}: {exc}") from exc

    return towers_from_model(model, eos_id=eos_id)


def towers_from_model(model: Any, *, eos_id: int) -> Towers:
    """Cuts a loaded CLIPModel (eval, eager attention) into its two projected towers,
    sharing its weights.

    Args:
        model: a transformers CLIPModel.
        eos_id: the tokenizer's end-of-text id; the text tower pools at its FIRST
            occurrence in each row.
    """
    import torch
    from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection

    # Pool at the first EOS whatever the config says. Checkpoints written before
    # transformers PR #24773 carry eos_token_id=2 and pool at argmax(input_ids) instead,
    # which only agrees while no added token has an id above EOS.
    model.text_model.eos_token_id = eos_id

    # The *WithProjection classes are optimum's natural export targets; build them on
    # the meta device and hand them the loaded modules, so weights are shared, not copied.
    with torch.device("meta"):
        vision = CLIPVisionModelWithProjection(model.config.vision_config)
        text = CLIPTextModelWithProjection(model.config.text_config)
    vision.vision_model = model.vision_model
    vision.visual_projection = model.visual_projection
    text.text_model = model.text_model
    text.text_projection = model.text_projection
    for tower in (vision, text):
        tower.config._attn_implementation = "eager"
        tower.eval()
    return Towers(model=model, vision=vision, text=text, eos_id=eos_id)


def reference_image_embeds(towers: Towers, pixel_values: Any) -> Any:
    """image_embeds [b, D] float32 numpy from the PyTorch model, not normalised."""
    import torch

    with torch.inference_mode():
        out = towers.model.get_image_features(pixel_values=torch.as_tensor(pixel_values))
    return out.float().numpy()


def reference_text_embeds(towers: Towers, input_ids: Any, attention_mask: Any) -> Any:
    """text_embeds [b, D] float32 numpy from the PyTorch model with its attention_mask
    (the exported tower takes input_ids alone), not normalised."""
    import torch

    with torch.inference_mode():
        out = towers.model.get_text_features(
            input_ids=torch.as_tensor(input_ids), attention_mask=torch.as_tensor(attention_mask)
        )
    return out.float().numpy()
