"""The PyTorch/transformers reference, set up the way a careful user would run it.

transformers' CLIPModel towers (get_image_features / get_text_features) with eager
attention (what cliprt exports), in inference mode, with torch.set_num_threads equal to
onnxruntime's intra-op threads; CLIPImageProcessor and CLIPTokenizerFast for
preprocessing and tokenization. fp32 on CPU; fp32 and fp16 on CUDA.

This module imports torch at import time: the runner imports it only when a reference is
asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


def _normalize(x: torch.Tensor) -> torch.Tensor:
    # *WithProjection / get_*_features outputs are not L2-normalised; CLIPModel.forward is.
    return x / x.norm(dim=-1, keepdim=True)


def _features(out: Any) -> torch.Tensor:
    # transformers 4.x returns a tensor; later versions may wrap it in a ModelOutput.
    if isinstance(out, torch.Tensor):
        return out
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(out, name, None)
        if isinstance(value, torch.Tensor):
            return value
    return out[0]


def checkpoint_bytes(checkpoint: str | Path) -> int | None:
    """Bytes of the weight files of a local checkpoint folder (None for a hub id)."""
    folder = Path(checkpoint)
    if not folder.is_dir():
        return None
    files = list(folder.glob("*.safetensors")) or list(folder.glob("*.bin"))
    return sum(f.stat().st_size for f in files) or None


class Reference:
    """transformers CLIPModel on one device at one precision.

    Args:
        checkpoint: HF checkpoint folder or hub id.
        device: "cpu" or "cuda".
        precision: "fp32", or "fp16" (CUDA only).
        threads: torch.set_num_threads value (the engine's intra-op threads).
    """

    def __init__(self, checkpoint: str | Path, *, device: str, precision: str, threads: int):
        from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

        torch.set_num_threads(threads)
        if device == "cuda":
            # cliprt's CUDA sessions run with use_tf32=0; cuDNN convolutions (the patch
            # embedding) would otherwise use TF32 on the reference side only.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.checkpoint = str(checkpoint)
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        model = CLIPModel.from_pretrained(self.checkpoint, attn_implementation="eager")
        self.model = model.to(self.device, dtype=self.dtype).eval()
        self.processor = CLIPImageProcessor.from_pretrained(self.checkpoint)
        self.tokenizer = CLIPTokenizerFast.from_pretrained(self.checkpoint)
        self.context_length = int(self.model.config.text_config.max_position_embeddings)

    @property
    def name(self) -> str:
        return f"transformers CLIPModel (eager, {self.precision}, {self.device.type})"

    def param_bytes(self) -> int:
        """Bytes of the parameters as loaded (at this precision)."""
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    def sync(self) -> None:
        """Waits for queued device work (no-op on CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def sync_fn(self) -> Callable[[], None] | None:
        return self.sync if self.device.type == "cuda" else None

    # --- the stages, timed separately by the runner ---

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """CLIPImageProcessor: decoded images -> float32 pixel_values on the CPU."""
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """CLIPTokenizerFast, padded to the longest prompt, truncated to the context."""
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def to_device(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pixel_values.to(self.device, dtype=self.dtype)

    def tokens_to_device(self, tokens: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in tokens.items()}

    def image_tower(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """get_image_features + L2 normalisation, on device-resident input."""
        with torch.inference_mode():
            return _normalize(_features(self.model.get_image_features(pixel_values=pixel_values)))

    def text_tower(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """get_text_features + L2 normalisation, on device-resident input."""
        with torch.inference_mode():
            return _normalize(_features(self.model.get_text_features(**tokens)))

    # --- end to end: what a user's code does, file or string -> float32 numpy ---

    def encode_files(self, files: Sequence[str | Path]) -> np.ndarray:
        images = []
        for f in files:
            with Image.open(f) as im:
                images.append(im.convert("RGB"))
        emb = self.image_tower(self.to_device(self.preprocess(images)))
        return emb.float().cpu().numpy()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        emb = self.text_tower(self.tokens_to_device(self.tokenize(texts)))
        return emb.float().cpu().numpy()

    def to_numpy(self, emb: torch.Tensor) -> np.ndarray:
        return emb.float().cpu().numpy()

    def gpu_memory(self) -> dict[str, int] | None:
        """Peak and current CUDA memory allocated by torch, in bytes (None on CPU)."""
        if self.device.type != "cuda":
            return None
        return {
            "max_allocated_bytes": int(torch.cuda.max_memory_allocated(self.device)),
            "allocated_bytes": int(torch.cuda.memory_allocated(self.device)),
            "max_reserved_bytes": int(torch.cuda.max_memory_reserved(self.device)),
        }


def cuda_available() -> tuple[bool, str]:
    """(available, reason) for the reference on CUDA."""
    if not torch.cuda.is_available():
        return False, "torch.cuda.is_available() is False (no CUDA device or a CPU-only torch)"
    return True, torch.cuda.get_device_name(0)
