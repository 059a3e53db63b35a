"""The `clip` family: transformers CLIPModel checkpoints (OpenAI's and their kind)."""

from __future__ import annotations

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

NAME = "clip"
MODEL_TYPES = ("clip",)


def load(folder: Path, label: str, work: Path) -> Checkpoint:
    """Loads a checked HF CLIP folder (see source.check_checkpoint)."""
    from cliprt.export.towers import load_towers

    tokenizer, processor = _load_tokenizer_and_processor(folder, label)
    bos_id, eos_id, pad_id = _special_ids(tokenizer, label)
    towers = load_towers(folder, eos_id=eos_id)
    return checkpoint_from_clip(
        towers.model,
        towers.vision,
        towers.text,
        family=NAME,
        label=label,
        tokenizer=tokenizer,
        processor=processor,
        ids=(bos_id, eos_id, pad_id),
        preprocessing=preprocessing_from_processor(processor, label),
        tokenizer_json=_tokenizer_json(folder, tokenizer, work),
        preprocessor_json=folder / PREPROCESSOR_FILE,
    )


def checkpoint_from_clip(
    model: Any,
    vision: Any,
    text: Any,
    *,
    family: str,
    label: str,
    tokenizer: Any,
    processor: Any,
    ids: tuple[int, int, int],
    preprocessing: Preprocessing,
    tokenizer_json: Path,
    preprocessor_json: Path,
    pixel_values: Any = None,
    clean: Any = None,
) -> Checkpoint:
    """A Checkpoint over a transformers CLIPModel (shared by clip and openclip).

    `clean`, when given, is the family's own text cleaning applied before the reference
    tokenizer (open_clip's ftfy + html.unescape); `pixel_values` replaces the processor.
    """
    import math

    import numpy as np

    config = model.config
    vc, tc = config.vision_config, config.text_config
    context_length = int(tc.max_position_embeddings)

    def tokenize(texts: Any) -> tuple[Any, Any]:
        texts = [clean(t) for t in texts] if clean is not None else list(texts)
        tok = tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=context_length,
            return_tensors="np",
        )
        return tok["input_ids"].astype(np.int64), tok["attention_mask"]

    def processor_pixels(images: list[Any]) -> Any:
        return processor(images=images, return_tensors="np")["pixel_values"].astype(np.float32)

    return Checkpoint(
        family=family,
        label=label,
        vision=vision,
        text=text,
        exporter="optimum-clip",
        vision_arch=hf_vision_arch(vc),
        text_arch=hf_text_arch(tc, context_length),
        embed_dim=int(config.projection_dim),
        image_size=int(vc.image_size),
        context_length=context_length,
        logit_scale=float(math.exp(float(model.logit_scale.detach()))),
        logit_bias=0.0,
        scoring="softmax",
        text_padding="longest",
        padding_side="right",
        bos_id=ids[0],
        eos_id=ids[1],
        pad_id=ids[2],
        preprocessing=preprocessing,
        tokenizer_json=tokenizer_json,
        preprocessor_json=preprocessor_json,
        n_params=sum(p.numel() for p in model.parameters()),
        tokenize=tokenize,
        pixel_values=pixel_values or processor_pixels,
        image_embeds=torch_embeds(lambda px: model.get_image_features(pixel_values=px)),
        text_embeds=torch_embeds(
            lambda i, m: model.get_text_features(input_ids=i, attention_mask=m)
        ),
    )


def _tokenizer_json(folder: Path, tokenizer: Any, work: Path) -> Path:
    if (folder / TOKENIZER_FILE).is_file():
        return folder / TOKENIZER_FILE
    # only vocab.json + merges.txt: the fast tokenizer converted them
    out = work / TOKENIZER_FILE
    tokenizer.backend_tokenizer.save(str(out))
    return out


def _load_tokenizer_and_processor(folder: Path, label: str) -> tuple[Any, Any]:
    from transformers import CLIPImageProcessor, CLIPTokenizerFast

    try:
        tokenizer = CLIPTokenizerFast.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise ExportError(
            f"cannot load the tokenizer of {label!r}: {exc}; save a CLIP tokenizer next to "
            "the weights (CLIPTokenizerFast.save_pretrained)"
        ) from exc
    try:
        processor = CLIPImageProcessor.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise ExportError(
            f"cannot load {PREPROCESSOR_FILE} of {label!r}: {exc}; save one with "
            "CLIPImageProcessor.save_pretrained"
        ) from exc
    return tokenizer, processor


def _special_ids(tokenizer: Any, label: str) -> tuple[int, int, int]:
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is None or eos is None:
        raise ExportError(
            f"the tokenizer of {label!r} has no BOS/EOS token (bos={bos}, eos={eos}); "
            "a CLIP tokenizer has <|startoftext|> and <|endoftext|>"
        )
    pad = tokenizer.pad_token_id
    return int(bos), int(eos), int(eos if pad is None else pad)


def preprocessing_from_processor(processor: Any, label: str) -> Preprocessing:
    """The manifest's Preprocessing of a CLIPImageProcessor (shortest-edge resize)."""
    size, crop = processor.size or {}, processor.crop_size or {}
    if "shortest_edge" not in size:
        raise ExportError(
            f"{PREPROCESSOR_FILE} of {label!r} resizes to {size}; cliprt supports CLIP's "
            "shortest-edge resize ({'shortest_edge': N}) only"
        )
    return Preprocessing(
        resize_shortest_edge=int(size["shortest_edge"]),
        crop_height=int(crop.get("height", size["shortest_edge"])),
        crop_width=int(crop.get("width", size["shortest_edge"])),
        resample=int(processor.resample),
        do_resize=bool(processor.do_resize),
        do_center_crop=bool(processor.do_center_crop),
        do_rescale=bool(processor.do_rescale),
        rescale_factor=float(processor.rescale_factor),
        do_normalize=bool(processor.do_normalize),
        image_mean=rgb(processor.image_mean),
        image_std=rgb(processor.image_std),
        do_convert_rgb=bool(getattr(processor, "do_convert_rgb", True)),
    )
