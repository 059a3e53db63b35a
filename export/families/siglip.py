"""The `siglip` family: transformers SiglipModel checkpoints, SigLIP and the fixed-
resolution SigLIP 2 (google/siglip2-*-patch16-224 and kin are SiglipModel checkpoints
with Gemma's tokenizer). SigLIP 2's NaFlex checkpoints (Siglip2Model, model_type
"siglip2") take patch sequences of varying length and are refused.

What differs from CLIP, and where cliprt records it:
- image: a squash resize to the tower's size (no crop), 0.5 mean/std -> manifest
  preprocessing.resize_mode = "squash";
- text: SentencePiece, every prompt padded to the fixed length the model was trained
  with (64) and no attention mask; the text tower pools the LAST position ->
  manifest text_padding = "max_length";
- scores: sigmoid(logit_scale * cos + logit_bias) per pair -> manifest scoring.
"""

from __future__ import annotations

import math
import string
from pathlib import Path
from typing import Any

from cliprt.errors import ExportError
from cliprt.export.families.base import (
    Checkpoint,
    hf_text_arch,
    hf_vision_arch,
    rgb,
    torch_embeds,
)
from cliprt.export.source import PREPROCESSOR_FILE, TOKENIZER_FILE
from cliprt.manifest import Preprocessing

NAME = "siglip"
MODEL_TYPES = ("siglip",)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def check(folder: Path, label: str) -> Path:
    """Checks that a SigLIP folder has weights, tokenizer files and a processor config.

    Raises:
        ExportError: what is missing and how to save it.
    """
    if not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise ExportError(
            f"{label!r} has no weights (none of {', '.join(WEIGHT_FILES)}); "
            "save the model with SiglipModel.save_pretrained"
        )
    if not any((folder / f).is_file() for f in (TOKENIZER_FILE, "spiece.model")):
        raise ExportError(
            f"{label!r} has no tokenizer (tokenizer.json or spiece.model); save it next to "
            f"the weights: AutoTokenizer.from_pretrained(...).save_pretrained({str(folder)!r})"
        )
    if not (folder / PREPROCESSOR_FILE).is_file():
        raise ExportError(
            f"{label!r} has no {PREPROCESSOR_FILE}; save it next to the weights: "
            f"SiglipImageProcessor.from_pretrained(...).save_pretrained({str(folder)!r})"
        )
    return folder


def _towers(model: Any) -> tuple[Any, Any]:
    import torch

    class PoolingHead(torch.nn.Module):
        """SigLIP's attention-pooling head written out in MatMuls, with the weights of
        model's own head. Same arithmetic as nn.MultiheadAttention with one query; its
        traced graph (unlike nn.MultiheadAttention's) keeps symbolic shape inference
        working, which onnxruntime's optimizer needs to fuse the encoder's layers. The
        export's parity gate compares this tower with SiglipModel's own."""

        def __init__(self, head: Any) -> None:
            super().__init__()
            self.head = head
            self.heads = head.attention.num_heads

        def forward(self, x: Any) -> Any:
            attn = self.head.attention
            width = attn.embed_dim
            d = width // self.heads
            wq, wk, wv = attn.in_proj_weight.chunk(3, dim=0)
            bq, bk, bv = attn.in_proj_bias.chunk(3, dim=0)
            q = torch.nn.functional.linear(self.head.probe, wq, bq)  # [1, 1, width]
            k = torch.nn.functional.linear(x, wk, bk)  # [b, n, width]
            v = torch.nn.functional.linear(x, wv, bv)
            q = q.reshape(1, self.heads, 1, d)
            k = k.reshape(x.shape[0], -1, self.heads, d).transpose(1, 2)
            v = v.reshape(x.shape[0], -1, self.heads, d).transpose(1, 2)
            scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
            o = torch.matmul(scores.softmax(dim=-1), v)  # [b, heads, 1, d]
            o = o.transpose(1, 2).reshape(x.shape[0], 1, width)
            o = attn.out_proj(o)
            o = o + self.head.mlp(self.head.layernorm(o))
            return o[:, 0]

    class VisionTower(torch.nn.Module):
        """pixel_values [b, 3, H, W] -> the attention-pooling head's output [b, D]."""

        def __init__(self, m: Any) -> None:
            super().__init__()
            self.vm = m.vision_model
            self.pool = PoolingHead(m.vision_model.head)

        def forward(self, pixel_values: Any) -> Any:
            vm = self.vm
            hidden = vm.embeddings(pixel_values)
            hidden = vm.encoder(inputs_embeds=hidden).last_hidden_state
            return self.pool(vm.post_layernorm(hidden))

    class TextTower(torch.nn.Module):
        """input_ids [b, 64] -> the head over the last position [b, D]; no mask."""

        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, input_ids: Any) -> Any:
            return self.m.get_text_features(input_ids=input_ids)

    return VisionTower(model).eval(), TextTower(model).eval()


def load(folder: Path, label: str, work: Path) -> Checkpoint:
    """Loads a checked SigLIP folder."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer, SiglipImageProcessor, SiglipModel

    check(folder, label)
    try:
        model = SiglipModel.from_pretrained(
            str(folder), attn_implementation="eager", dtype=torch.float32
        ).eval()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"cannot load the SigLIP weights in {str(folder)!r}: {exc}") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        processor = SiglipImageProcessor.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError, ImportError) as exc:
        raise ExportError(
            f"cannot load the tokenizer or {PREPROCESSOR_FILE} of {label!r}: {exc}"
        ) from exc
    vc, tc = model.config.vision_config, model.config.text_config
    context_length = int(tc.max_position_embeddings)
    tokenizer_json = write_tokenizer_json(tokenizer, work / TOKENIZER_FILE, label)

    def tokenize(texts: Any) -> tuple[Any, Any]:
        tok = tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=context_length,
            return_tensors="np",
        )
        ids = tok["input_ids"].astype(np.int64)
        return ids, np.ones_like(ids)  # SigLIP runs without a mask, as it was trained

    def pixel_values(images: list[Any]) -> Any:
        return processor(images=images, return_tensors="np")["pixel_values"].astype(np.float32)

    vision, text = _towers(model)
    pad = tokenizer.pad_token_id
    eos = tokenizer.eos_token_id
    bos = tokenizer.bos_token_id
    if pad is None or eos is None:
        raise ExportError(
            f"the tokenizer of {label!r} has no pad or EOS token (pad={pad}, eos={eos}); "
            "SigLIP pads every prompt to its fixed length"
        )
    return Checkpoint(
        family=NAME,
        label=label,
        vision=vision,
        text=text,
        exporter="torch",
        vision_arch=hf_vision_arch(vc),
        text_arch=hf_text_arch(tc, context_length),
        embed_dim=int(getattr(tc, "projection_size", None) or tc.hidden_size),
        image_size=int(vc.image_size),
        context_length=context_length,
        logit_scale=float(math.exp(float(model.logit_scale.detach()))),
        logit_bias=float(model.logit_bias.detach()),
        scoring="sigmoid",
        text_padding="max_length",
        padding_side=str(getattr(tokenizer, "padding_side", "right")),
        bos_id=int(bos if bos is not None else eos),
        eos_id=int(eos),
        pad_id=int(pad),
        preprocessing=preprocessing_from_processor(processor, int(vc.image_size), label),
        tokenizer_json=tokenizer_json,
        preprocessor_json=folder / PREPROCESSOR_FILE,
        n_params=sum(p.numel() for p in model.parameters()),
        tokenize=tokenize,
        pixel_values=pixel_values,
        image_embeds=torch_embeds(lambda px: model.get_image_features(pixel_values=px)),
        text_embeds=torch_embeds(lambda ids, _mask: model.get_text_features(input_ids=ids)),
        # Fused in every layer with the PoolingHead above (checked by the tests on the
        # random archs); should a checkpoint not fuse, the export records it in the
        # manifest (attention_fused) rather than failing: unfused is slower, not wrong.
        strict_fusion=False,
        optimizer_model_type="clip",
        notes={"tokenizer_class": type(tokenizer).__name__},
    )


def preprocessing_from_processor(processor: Any, image_size: int, label: str) -> Preprocessing:
    """The manifest's Preprocessing of a SiglipImageProcessor (squash resize, no crop)."""
    size = processor.size or {}
    if "height" not in size or "width" not in size:
        raise ExportError(
            f"{PREPROCESSOR_FILE} of {label!r} resizes to {size}; SigLIP resizes to "
            "{'height': N, 'width': N}"
        )
    h, w = int(size["height"]), int(size["width"])
    if (h, w) != (image_size, image_size):
        raise ExportError(
            f"{PREPROCESSOR_FILE} of {label!r} resizes to {h}x{w} but the vision tower "
            f"takes {image_size}x{image_size}; fix the processor config"
        )
    return Preprocessing(
        resize_shortest_edge=h,
        crop_height=h,
        crop_width=w,
        resample=int(processor.resample),
        do_resize=bool(processor.do_resize),
        do_center_crop=False,
        do_rescale=bool(processor.do_rescale),
        rescale_factor=float(processor.rescale_factor),
        do_normalize=bool(processor.do_normalize),
        image_mean=rgb(processor.image_mean),
        image_std=rgb(processor.image_std),
        do_convert_rgb=bool(getattr(processor, "do_convert_rgb", None) is not False),
        resize_mode="squash",
    )


def write_tokenizer_json(tokenizer: Any, out: Path, label: str) -> Path:
    """Writes the tokenizer.json the runtime reads: a fast tokenizer's own, or SigLIP's
    SentencePiece model converted (T5's Unigram conversion plus SiglipTokenizer's text
    canonicalisation: lowercase, punctuation removed, whitespace collapsed).

    Raises:
        ExportError: a slow tokenizer of another kind (no known conversion).
    """
    if getattr(tokenizer, "is_fast", False):
        tokenizer.backend_tokenizer.save(str(out))
        return out
    if type(tokenizer).__name__ != "SiglipTokenizer":
        raise ExportError(
            f"the tokenizer of {label!r} is a slow {type(tokenizer).__name__} with no known "
            "conversion to tokenizer.json; save a fast tokenizer (tokenizer.json) next to it"
        )
    convert_siglip_tokenizer(tokenizer).save(str(out))
    return out


def convert_siglip_tokenizer(tokenizer: Any) -> Any:
    """A `tokenizers.Tokenizer` equal to a (slow) SiglipTokenizer."""
    from tokenizers import Regex, normalizers
    from transformers.convert_slow_tokenizer import T5Converter

    class SiglipConverter(T5Converter):
        # T5's converter appends T5's <extra_id_*> sentinels; SigLIP has none.
        def vocab(self, proto: Any) -> list[tuple[str, float]]:
            return [(piece.piece, piece.score) for piece in proto.pieces]

    fast = SiglipConverter(tokenizer).converted()
    punctuation = "[" + "".join("\\" + c for c in string.punctuation) + "]"
    steps = []
    if getattr(tokenizer, "do_lower_case", False):
        steps.append(normalizers.Lowercase())
    steps += [
        normalizers.Replace(Regex(punctuation), ""),
        normalizers.Replace(Regex(r"\s+"), " "),
        normalizers.Strip(),
    ]
    if fast.normalizer is not None:
        steps.append(fast.normalizer)
    fast.normalizer = normalizers.Sequence(steps)
    return fast


# Shapes of the real checkpoints (config.json of the google/ repos): text, vision
# overrides of SiglipTextConfig / SiglipVisionConfig, and the tokenizer type.
_BASE = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12}
# For tests: two layers of narrow width (the random:siglip*-tiny sources).
_TINY_TOWERS: dict[str, dict[str, int]] = {
    "text": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
    },
    "vision": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "patch_size": 16,
        "image_size": 64,
    },
}

_SO400M = {"hidden_size": 1152, "intermediate_size": 4304, "num_attention_heads": 16}
RANDOM_ARCHS: dict[str, dict[str, Any]] = {
    "siglip-base-patch16-224": {
        "text": {**_BASE, "num_hidden_layers": 12, "vocab_size": 32000},
        "vision": {**_BASE, "num_hidden_layers": 12, "patch_size": 16, "image_size": 224},
        "tokenizer": "siglip",
    },
    "siglip-so400m-patch14-384": {
        "text": {**_SO400M, "num_hidden_layers": 27, "vocab_size": 32000},
        "vision": {**_SO400M, "num_hidden_layers": 27, "patch_size": 14, "image_size": 384},
        "tokenizer": "siglip",
    },
    "siglip2-base-patch16-224": {
        "text": {**_BASE, "num_hidden_layers": 12, "vocab_size": 256000},
        "vision": {**_BASE, "num_hidden_layers": 12, "patch_size": 16, "image_size": 224},
        "tokenizer": "gemma",
    },
    # For tests: two layers of narrow width, both tokenizer kinds.
    "siglip-tiny": {
        **_TINY_TOWERS,
        "tokenizer": "siglip",
    },
    "siglip2-tiny": {
        **_TINY_TOWERS,
        "tokenizer": "gemma",
    },
}


def random_config(arch: str) -> Any:
    """The transformers SiglipConfig of a random arch (see RANDOM_ARCHS)."""
    from transformers import SiglipConfig

    spec = RANDOM_ARCHS[arch]
    text = {**spec["text"], "max_position_embeddings": 64}
    if spec["tokenizer"] == "gemma":  # Gemma's ids: <pad> 0, <eos> 1, <bos> 2
        text.update(pad_token_id=0, eos_token_id=1, bos_token_id=2)
    else:  # SigLIP's spiece.model: pad = eos = </s> 1
        text.update(pad_token_id=1, eos_token_id=1, bos_token_id=None)
    return SiglipConfig(text_config=text, vision_config=dict(spec["vision"]))


def build_random(arch: str, folder: Path, *, seed: int = 0) -> Path:
    """Saves a random-weight SiglipModel of `arch` as a complete HF checkpoint folder,
    with a locally trained stand-in tokenizer of the real type (see
    cliprt.export.standin_tokenizers: the vocabulary is NOT SigLIP's or Gemma's)."""
    import torch
    from transformers import (
        GemmaTokenizerFast,
        SiglipImageProcessor,
        SiglipModel,
        SiglipTokenizer,
    )

    from cliprt.export.standin_tokenizers import train_standin

    spec = RANDOM_ARCHS[arch]
    kind = spec["tokenizer"]
    folder.mkdir(parents=True, exist_ok=True)
    config = random_config(arch)
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    with torch.no_grad():  # the released checkpoints' values, not init noise
        model.logit_scale.fill_(math.log(112.0))
        model.logit_bias.fill_(-16.5)
    model.save_pretrained(str(folder), safe_serialization=True)
    model_file = train_standin(kind, folder / "_spm")
    if kind == "gemma":
        tok = GemmaTokenizerFast(
            vocab_file=str(model_file), add_bos_token=True, add_eos_token=True, model_max_length=64
        )
    else:
        tok = SiglipTokenizer(vocab_file=str(model_file), model_max_length=64)
    tok.save_pretrained(str(folder))
    for f in model_file.parent.iterdir():
        f.unlink()
    model_file.parent.rmdir()
    size = int(spec["vision"]["image_size"])
    SiglipImageProcessor(size={"height": size, "width": size}).save_pretrained(str(folder))
    return folder
