"""Checkpoint families: one module each (clip, openclip, siglip), each turning its
source into the same two towers (a `base.Checkpoint`) for the one shared pipeline.

`detect` decides the family of a local folder from its files; anything else is an
UnsupportedCheckpointError naming what it saw, the supported families and what to do.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

from cliprt.errors import UnsupportedCheckpointError

OPENCLIP_CONFIG = "open_clip_config.json"

SUPPORTED = {
    "clip": "transformers CLIPModel (OpenAI CLIP and checkpoints saved the same way)",
    "openclip": "OpenCLIP ViT checkpoints (open_clip_config.json + open_clip_model.safetensors"
    " or open_clip_pytorch_model.bin): LAION, DataComp, DFN, MetaCLIP",
    "siglip": "transformers SiglipModel: SigLIP and fixed-resolution SigLIP 2",
}

# model_type -> (what it is, what to do), for the refusals users are likely to meet.
_KNOWN_OTHERS = {
    "siglip2": (
        "SigLIP 2 NaFlex (Siglip2Model, variable-resolution patch sequences)",
        "export a fixed-resolution SigLIP 2 checkpoint instead, e.g. "
        "google/siglip2-base-patch16-224 (a SiglipModel)",
    ),
    "chinese_clip": ("ChineseCLIP", "it is not supported yet; no workaround in cliprt"),
    "altclip": (
        "AltCLIP (an XLM-R text tower)",
        "it is not supported yet; no workaround in cliprt",
    ),
    "clip_vision_model": (
        "a CLIP vision tower alone",
        "export the full CLIPModel checkpoint (both towers)",
    ),
    "clip_text_model": ("a CLIP text tower alone", "export the full CLIPModel checkpoint"),
}


def supported_text() -> str:
    """ "clip (what), openclip (what), siglip (what)" for messages."""
    return ", ".join(f"{name} ({what})" for name, what in SUPPORTED.items())


def family_module(name: str) -> ModuleType:
    """The module of a family name ("clip", "openclip", "siglip")."""
    if name not in ("clip", "openclip", "siglip"):
        raise UnsupportedCheckpointError(
            f"unknown checkpoint family {name!r}; supported: {', '.join(SUPPORTED)}"
        )
    return importlib.import_module(f"cliprt.export.families.{name}")


def detect(folder: Path, label: str) -> str:
    """The family of a local checkpoint folder.

    Raises:
        UnsupportedCheckpointError: no family recognises it; the message names what
            was seen, the supported families and what to do.
    """
    if (folder / OPENCLIP_CONFIG).is_file():
        return "openclip"
    config_path = folder / "config.json"
    if not config_path.is_file():
        return "clip"  # the clip family's checks say what a HF folder lacks
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "clip"  # reported with the reason by the clip family's checks
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type == "clip":
        return "clip"
    if model_type == "siglip":
        return "siglip"
    what, todo = _KNOWN_OTHERS.get(
        str(model_type),
        (
            f"a {model_type!r} checkpoint",
            "convert it to one of the supported families, or open an issue",
        ),
    )
    raise UnsupportedCheckpointError(
        f"{label!r} is a {model_type!r} checkpoint ({what}); cliprt exports "
        f"{supported_text()}. What to do: {todo}"
    )
