"""What every checkpoint family hands the shared pipeline: a `Checkpoint` (two PyTorch
towers, their reference preprocessing and tokenization, and the manifest facts), so
that load -> export -> optimize -> variants -> validate -> save is one code path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cliprt.manifest import Preprocessing


@dataclass(frozen=True)
class TowerArch:
    """The shape of one tower's encoder, for the optimizer and the manifest."""

    layers: int
    hidden_size: int
    heads: int
    extra: dict[str, int] = field(default_factory=dict)  # patch_size, vocab_size ...

    def to_dict(self) -> dict[str, int]:
        return {
            "layers": self.layers,
            "hidden_size": self.hidden_size,
            "heads": self.heads,
            **self.extra,
        }


@dataclass
class Checkpoint:
    """A loaded checkpoint of any family, cut into the two towers cliprt exports.

    `vision` maps pixel_values [b, 3, H, W] float32 -> image_embeds [b, D] and `text`
    maps input_ids [b, s] int64 -> text_embeds [b, D]; neither normalises. The
    reference callables are the family's own PyTorch/processor pipeline, against which
    every exported variant is validated.
    """

    family: str
    label: str
    vision: Any  # torch.nn.Module
    text: Any  # torch.nn.Module
    # "optimum-clip": optimum's CLIP OnnxConfigs (CLIP*WithProjection modules);
    # "torch": torch.onnx.export of the modules as they are.
    exporter: str
    vision_arch: TowerArch
    text_arch: TowerArch
    embed_dim: int
    image_size: int
    context_length: int
    logit_scale: float  # the multiplier itself, exp() of the stored parameter
    logit_bias: float
    scoring: str  # manifest.CHOICES["scoring"]
    text_padding: str  # manifest.CHOICES["text_padding"]
    padding_side: str  # manifest.CHOICES["padding_side"]
    bos_id: int
    eos_id: int
    pad_id: int
    preprocessing: Preprocessing
    tokenizer_json: Path  # the tokenizer.json the runtime will read
    preprocessor_json: Path  # copied into the folder for reference
    n_params: int
    # texts -> (input_ids int64 [n, s], attention_mask [n, s]) by the family's tokenizer
    tokenize: Callable[[Sequence[str]], tuple[Any, Any]]
    # PIL images -> pixel_values float32 [n, 3, H, W] by the family's processor
    pixel_values: Callable[[list[Any]], Any]
    # reference embeddings (not normalised) from the family's PyTorch model
    image_embeds: Callable[[Any], Any]
    text_embeds: Callable[[Any, Any], Any]
    # False: onnxruntime's optimizer has no pattern for this family's attention; the
    # fused count is recorded, not required.
    strict_fusion: bool = True
    optimizer_model_type: str = "clip"
    notes: dict[str, Any] = field(default_factory=dict)


def torch_embeds(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a PyTorch feature function: numpy in, float32 numpy out, no autograd."""

    def run(*arrays: Any) -> Any:
        import torch

        with torch.inference_mode():
            out = fn(*(torch.as_tensor(a) for a in arrays))
        return out.float().numpy()

    return run


def hf_vision_arch(vc: Any) -> TowerArch:
    """The shape facts of a transformers vision config (CLIP's and SigLIP's alike)."""
    return TowerArch(
        int(vc.num_hidden_layers),
        int(vc.hidden_size),
        int(vc.num_attention_heads),
        {"patch_size": int(vc.patch_size), "image_size": int(vc.image_size)},
    )


def hf_text_arch(tc: Any, context_length: int) -> TowerArch:
    """The shape facts of a transformers text config (CLIP's and SigLIP's alike)."""
    return TowerArch(
        int(tc.num_hidden_layers),
        int(tc.hidden_size),
        int(tc.num_attention_heads),
        {"vocab_size": int(tc.vocab_size), "context_length": context_length},
    )


def rgb(values: Any) -> tuple[float, float, float]:
    """One float per RGB channel (image_mean / image_std), as Preprocessing takes them.

    Raises:
        ValueError: not three values.
    """
    r, g, b = (float(x) for x in values)
    return r, g, b
