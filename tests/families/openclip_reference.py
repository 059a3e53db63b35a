"""open_clip's own model and tokenizer, and its eval preprocessing, for the parity tests.

open_clip's model and tokenizer code is imported from the installed open_clip_torch
package. Two things stand in for torchvision, which does not import beside the CPU
torch build here (PyPI's torchvision wheels link a CUDA torch):

- open_clip/utils.py imports one name from torchvision, FrozenBatchNorm2d, used only
  to freeze BatchNorm in ResNet towers (never for ViT): `_fake_torchvision()` binds
  that name to a class that refuses to be built, only while open_clip's modules are
  imported, so a ViT never touches it and nothing else sees it;
- open_clip's eval transform (transform.py: Resize -> CenterCrop -> ToTensor ->
  Normalize) is torchvision's; `openclip_preprocess` below re-implements exactly the
  torchvision functions it calls on PIL images, from torchvision's source:
  F.resize (shortest edge, long edge int()-truncated, PIL resize with the
  interpolation), F.center_crop (offsets int(round((H - h) / 2.0))), F.to_tensor
  (uint8 -> float32 / 255), F.normalize ((x - mean) / std in float32). Where
  torchvision imports, the test compares this reference with open_clip's transform too.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np


def _fake_torchvision() -> list[str]:
    """Puts a torchvision.ops.misc holding only FrozenBatchNorm2d into sys.modules where
    the real one does not import; returns the names added (removed again right after
    open_clip's modules are imported, so that nothing else ever sees them)."""
    try:
        import torchvision.ops.misc  # noqa: F401

        return []
    except Exception:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]

    class FrozenBatchNorm2d:  # only ResNet towers build one
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("torchvision is not available; ResNet towers cannot be built")

    added = ["torchvision", "torchvision.ops", "torchvision.ops.misc"]
    for name in added:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["torchvision.ops.misc"].FrozenBatchNorm2d = FrozenBatchNorm2d
    return added


def open_clip_modules() -> tuple[Any, Any]:
    """(open_clip.model, open_clip.tokenizer), imported without open_clip/__init__."""
    import transformers  # noqa: F401  (imported first: it probes for torchvision itself)

    from cliprt.export.families.openclip import import_open_clip_module

    added = _fake_torchvision()
    try:
        return import_open_clip_module("model"), import_open_clip_module("tokenizer")
    finally:
        for name in added:
            sys.modules.pop(name, None)


def openclip_preprocess(
    image: Any, size: int, mean: tuple[float, ...], std: tuple[float, ...], resample: int = 3
) -> np.ndarray:
    """open_clip's eval transform (resize_mode "shortest") on one PIL image, as the
    torchvision functions it calls compute it. Returns float32 (3, size, size)."""
    import torch

    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), resample)
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    image = image.crop((left, top, left + size, top + size))
    image = image.convert("RGB")  # MaybeConvertMode comes after the crop in open_clip
    x = torch.from_numpy(np.array(image, np.uint8, copy=True)).permute(2, 0, 1).contiguous()
    x = x.to(dtype=torch.float32).div(255)
    m = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    return x.sub_(m).div_(s).numpy()
