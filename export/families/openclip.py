"""The `openclip` family: OpenCLIP ViT checkpoints (LAION, DataComp, DFN, MetaCLIP).

An OpenCLIP ViT-B/L/H/g with a learnable position embedding, class-token pooling and a
causal text tower pooled at its EOT token is, layer for layer, the architecture of
transformers' CLIPModel (OpenCLIP packs q/k/v into one in_proj; transformers splits
it). So this module reads open_clip_config.json and the weights (safetensors, or
torch.load(weights_only=True): never a full unpickle), renames and splits them into a
CLIPModel, and the rest of the export is the clip family's. open_clip itself is not
needed to export; the tests prove the result against open_clip's own model code.

Refused, each with its reason: timm or Hugging Face towers (ConvNeXt, EVA, RoBERTa
text), attention pooling, LayerScale, non-"argmax" text pooling, SigLIP weights in
OpenCLIP form (use the transformers SigLIP checkpoint), resize_mode "longest".

What differs from a transformers CLIP folder, and where cliprt records it: the pad
id is 0 (manifest pad_id); the centre crop rounds its offset (torchvision's CenterCrop:
preprocessing.crop_rounding = "round") and pixels are divided by 255 in float32
(ToTensor: preprocessing.rescale_mode = "divide").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cliprt.errors import ExportError, UnsupportedCheckpointError
from cliprt.export.families.base import Checkpoint, rgb
from cliprt.manifest import Preprocessing

NAME = "openclip"
CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HF_HUB_PREFIX = "hf-hub:"
RANDOM_PREFIX = "openclip-"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
# open_clip's eval transform knows these; "random" (a training option) means bicubic.
_INTERPOLATION = {"bicubic": 3, "bilinear": 2, "random": 3}

# open_clip's own model configs (open_clip/model_configs/*.json) of the random archs.
RANDOM_ARCHS: dict[str, dict[str, Any]] = {
    "ViT-B-32": {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 512,
            "heads": 8,
            "layers": 12,
        },
    },
    "ViT-H-14": {
        "embed_dim": 1024,
        "vision_cfg": {
            "image_size": 224,
            "layers": 32,
            "width": 1280,
            "head_width": 80,
            "patch_size": 14,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 1024,
            "heads": 16,
            "layers": 24,
        },
    },
    # For tests: two narrow layers, GELU as the LAION models use.
    "tiny": {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 64,
            "layers": 2,
            "width": 32,
            "head_width": 8,
            "patch_size": 16,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 4,
            "layers": 2,
        },
    },
}

_VISION_OK = {
    "image_size",
    "layers",
    "width",
    "head_width",
    "patch_size",
    "mlp_ratio",
    "patch_dropout",
    "pool_type",
    "output_tokens",
    "proj_type",
}
_TEXT_OK = {
    "context_length",
    "vocab_size",
    "width",
    "heads",
    "layers",
    "mlp_ratio",
    "pad_id",
    "pool_type",
    "tokenizer_kwargs",
    "hf_tokenizer_name",
}


def openclip_hub_id(source: str) -> str | None:
    """The hub repo of an OpenCLIP name: "hf-hub:org/name" -> "org/name"; an
    "ARCH/pretrained_tag" that open_clip's pretrained table maps to a hub repo -> that
    repo; None for anything else (a plain hub id stays a transformers checkpoint).

    Raises:
        ExportError: an ARCH/tag whose tag open_clip's table does not know.
    """
    if source.startswith(HF_HUB_PREFIX):
        repo = source[len(HF_HUB_PREFIX) :]
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ExportError(f"{source!r}: expected hf-hub:ORG/NAME")
        return repo
    parts = source.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    table = _pretrained_table()
    if table is None or parts[0] not in table:
        return None
    arch, tag = parts
    cfg = table[arch].get(tag)
    if cfg is None:
        raise ExportError(
            f"{source!r}: open_clip knows no pretrained tag {tag!r} for {arch}; known: "
            f"{', '.join(sorted(table[arch]))}"
        )
    if not cfg.get("hf_hub"):
        raise ExportError(
            f"{source!r}: open_clip has no Hugging Face hub copy of these weights (only a URL); "
            "download them with open_clip and pass the folder"
        )
    return cfg["hf_hub"].rstrip("/")


def _pretrained_table() -> dict[str, dict[str, Any]] | None:
    """open_clip's table ARCH -> tag -> cfg, or None where open_clip is not installed.
    open_clip.pretrained is loaded without open_clip/__init__ (which needs torchvision)."""
    try:
        pretrained = import_open_clip_module("pretrained")
    except ImportError:
        return None
    return {arch: dict(tags) for arch, tags in pretrained._PRETRAINED.items()}


def import_open_clip_module(name: str) -> Any:
    """open_clip.`name` imported without running open_clip/__init__.py.

    open_clip's package init imports its torchvision-based transforms; the model,
    tokenizer and pretrained-table modules do not need torchvision (utils.py imports
    one class, FrozenBatchNorm2d, used only to freeze ResNet towers). PyPI's
    torchvision does not import beside the CPU torch build cliprt's export uses, so the
    package is entered here by its path.

    Raises:
        ImportError: open_clip_torch is not installed, or `name` needs torchvision.
    """
    import importlib
    import importlib.util
    import sys
    import types

    if "open_clip" not in sys.modules:
        spec = importlib.util.find_spec("open_clip")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("open_clip_torch is not installed")
        package = types.ModuleType("open_clip")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["open_clip"] = package
    return importlib.import_module(f"open_clip.{name}")


def check(folder: Path, label: str) -> Path:
    """Checks an OpenCLIP folder: config and weights present.

    Raises:
        ExportError: what is missing.
    """
    if not (folder / CONFIG_FILE).is_file():
        raise ExportError(f"{label!r} has no {CONFIG_FILE}")
    if not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise ExportError(
            f"{label!r} has {CONFIG_FILE} but no weights (none of {', '.join(WEIGHT_FILES)}); "
            "download them beside the config"
        )
    return folder


def read_config(folder: Path, label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model_cfg, preprocess_cfg) of open_clip_config.json, checked for what maps onto
    CLIPModel.

    Raises:
        UnsupportedCheckpointError: a tower or option cliprt cannot export, named.
    """
    try:
        data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        model_cfg = data["model_cfg"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{folder / CONFIG_FILE} is not an OpenCLIP config: {exc}") from exc
    vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})

    def refuse(what: str) -> UnsupportedCheckpointError:
        return UnsupportedCheckpointError(
            f"{label!r} is an OpenCLIP checkpoint with {what}; cliprt exports OpenCLIP ViT "
            "towers with class-token pooling and a causal text tower pooled at EOT (the "
            "CLIP architecture: ViT-B/L/H/g, LAION/DataComp/DFN/MetaCLIP). Export it with "
            "open_clip's own ONNX path, or open an issue naming the model"
        )

    if vision.get("timm_model_name"):
        raise refuse(f"a timm vision tower ({vision['timm_model_name']}, e.g. ConvNeXt/EVA)")
    if text.get("hf_model_name"):
        raise refuse(f"a Hugging Face text tower ({text['hf_model_name']})")
    if model_cfg.get("init_logit_bias") is not None:
        raise refuse("SigLIP weights (a logit bias); use the transformers SigLIP checkpoint")
    if vision.get("layers") is not None and not isinstance(vision.get("layers"), int):
        raise refuse("a ModifiedResNet vision tower (layers given per stage)")
    extra = sorted((set(vision) - _VISION_OK) | {f"text.{k}" for k in set(text) - _TEXT_OK})
    extra += [k for k in ("multimodal_cfg",) if k in model_cfg]
    if vision.get("pool_type", "tok") != "tok" or text.get("pool_type", "argmax") != "argmax":
        extra.append("pool_type")
    if vision.get("proj_type", "linear") != "linear":
        extra.append("vision.proj_type")
    if extra:
        raise refuse(f"options {extra}")
    return model_cfg, data.get("preprocess_cfg", {})


def clip_config(model_cfg: dict[str, Any]) -> Any:
    """The transformers CLIPConfig of an OpenCLIP ViT model_cfg."""
    from transformers import CLIPConfig

    v, t = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    act = "quick_gelu" if model_cfg.get("quick_gelu") else "gelu"
    vw, tw = int(v["width"]), int(t["width"])
    return CLIPConfig(
        text_config={
            "vocab_size": int(t.get("vocab_size", 49408)),
            "hidden_size": tw,
            "intermediate_size": int(tw * t.get("mlp_ratio", 4.0)),
            "num_hidden_layers": int(t["layers"]),
            "num_attention_heads": int(t.get("heads", 8)),
            "max_position_embeddings": int(t.get("context_length", 77)),
            "hidden_act": act,
            "layer_norm_eps": 1e-5,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 0,
        },
        vision_config={
            "hidden_size": vw,
            "intermediate_size": int(vw * v.get("mlp_ratio", 4.0)),
            "num_hidden_layers": int(v["layers"]),
            "num_attention_heads": vw // int(v.get("head_width", 64)),
            "image_size": int(v["image_size"]),
            "patch_size": int(v["patch_size"]),
            "hidden_act": act,
            "layer_norm_eps": 1e-5,
        },
        projection_dim=int(model_cfg["embed_dim"]),
    )


# OpenCLIP key -> transformers CLIPModel key, for the tensors that map one to one (both
# directions of the conversion read this one table).
_SIMPLE_KEYS = {
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}


def _blocks(prefix_from: str, prefix_to: str, sd: dict[str, Any], out: dict[str, Any]) -> None:
    pattern = re.compile(re.escape(prefix_from) + r"(\d+)\.(.+)")
    names = {
        "ln_1": "layer_norm1",
        "ln_2": "layer_norm2",
        "attn.out_proj": "self_attn.out_proj",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
    }
    for key in [k for k in sd if k.startswith(prefix_from)]:
        m = pattern.fullmatch(key)
        if m is None:
            continue
        i, rest = m.group(1), m.group(2)
        dst = f"{prefix_to}{i}."
        value = sd.pop(key)
        if rest.startswith("attn.in_proj_"):
            kind = rest.rsplit("_", 1)[1]  # weight | bias
            for name, part in zip(("q", "k", "v"), value.chunk(3, dim=0), strict=True):
                out[f"{dst}self_attn.{name}_proj.{kind}"] = part.contiguous()
            continue
        for src, to in names.items():
            if rest.startswith(src + "."):
                out[dst + to + rest[len(src) :]] = value
                break
        else:
            sd[key] = value  # left for the unexpected-keys report


def to_clip_state_dict(sd: dict[str, Any]) -> dict[str, Any]:
    """OpenCLIP state dict -> transformers CLIPModel state dict (consumes `sd`).

    Raises:
        ExportError: keys that have no place in CLIPModel (another architecture).
    """
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    sd = {(k[5:] if k.startswith("text.") else k): v for k, v in sd.items()}  # custom_text
    out: dict[str, Any] = {}
    _blocks("visual.transformer.resblocks.", "vision_model.encoder.layers.", sd, out)
    _blocks("transformer.resblocks.", "text_model.encoder.layers.", sd, out)
    for src, dst in _SIMPLE_KEYS.items():
        if src in sd:
            out[dst] = sd.pop(src)
    # OpenCLIP keeps projections as [width, embed] matrices used as x @ proj.
    for src, dst in (
        ("visual.proj", "visual_projection.weight"),
        ("text_projection", "text_projection.weight"),
    ):
        if src in sd:
            out[dst] = sd.pop(src).t().contiguous()
    sd.pop("attn_mask", None)
    if sd:
        raise UnsupportedCheckpointError(
            f"OpenCLIP weights with keys that have no place in a CLIP ViT: "
            f"{sorted(sd)[:8]}{' ...' if len(sd) > 8 else ''}; cliprt exports plain OpenCLIP "
            "ViT checkpoints only"
        )
    return out


def from_clip_state_dict(sd: dict[str, Any]) -> dict[str, Any]:
    """transformers CLIPModel state dict -> OpenCLIP layout (for random checkpoints)."""
    import torch

    out: dict[str, Any] = {}
    inverse = {v: k for k, v in _SIMPLE_KEYS.items()}
    names = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "self_attn.out_proj": "attn.out_proj",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
    }
    qkv: dict[str, dict[str, Any]] = {}
    for key, value in sd.items():
        if key in inverse:
            out[inverse[key]] = value
            continue
        if key == "visual_projection.weight":
            out["visual.proj"] = value.t().contiguous()
            continue
        if key == "text_projection.weight":
            out["text_projection"] = value.t().contiguous()
            continue
        m = re.fullmatch(r"(vision|text)_model\.encoder\.layers\.(\d+)\.(.+)", key)
        if m is None:
            continue  # position_ids buffers
        tower, i, rest = m.groups()
        base = ("visual." if tower == "vision" else "") + f"transformer.resblocks.{i}."
        q = re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
        if q is not None:
            qkv.setdefault(base + "attn.in_proj_" + q.group(2), {})[q.group(1)] = value
            continue
        for src, to in names.items():
            if rest.startswith(src + "."):
                out[base + to + rest[len(src) :]] = value
                break
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def read_weights(folder: Path, label: str) -> dict[str, Any]:
    """The state dict, from safetensors or torch.load(weights_only=True).

    Raises:
        ExportError: unreadable weights (a pickle that is more than tensors included).
    """
    st = folder / WEIGHT_FILES[0]
    try:
        if st.is_file():
            from safetensors.torch import load_file

            return dict(load_file(str(st)))
        import torch

        sd = torch.load(str(folder / WEIGHT_FILES[1]), map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, pickle and zip errors all mean the same here
        raise ExportError(
            f"cannot read the OpenCLIP weights of {label!r} ({type(exc).__name__}: {exc}); "
            "weights are loaded as tensors only (torch.load weights_only=True)"
        ) from exc
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]  # a training checkpoint
    return dict(sd)


def preprocessing(preprocess_cfg: dict[str, Any], image_size: int, label: str) -> Preprocessing:
    """The manifest's Preprocessing of OpenCLIP's eval transform (image_transform):
    Resize(shortest edge, interpolation) + CenterCrop (offset rounded) or a squash
    Resize, RGB, ToTensor (x / 255 in float32), Normalize(mean, std).

    Raises:
        UnsupportedCheckpointError: resize_mode "longest" or an unknown interpolation.
    """
    size = preprocess_cfg.get("size", image_size)
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    mode = preprocess_cfg.get("resize_mode", "shortest")
    interpolation = preprocess_cfg.get("interpolation", "bicubic")
    if mode not in ("shortest", "squash") or interpolation not in _INTERPOLATION:
        raise UnsupportedCheckpointError(
            f"{label!r}: OpenCLIP preprocess resize_mode={mode!r}, interpolation="
            f"{interpolation!r}; cliprt reproduces resize_mode 'shortest' or 'squash' with "
            f"{', '.join(_INTERPOLATION)} interpolation"
        )
    if mode == "shortest" and h != w:
        raise UnsupportedCheckpointError(
            f"{label!r}: a non-square {h}x{w} crop after a shortest-edge resize is not supported"
        )
    return Preprocessing(
        resize_shortest_edge=h,
        crop_height=h,
        crop_width=w,
        resample=_INTERPOLATION[interpolation],
        do_resize=True,
        do_center_crop=mode == "shortest",
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=rgb(preprocess_cfg.get("mean", OPENAI_MEAN)),
        image_std=rgb(preprocess_cfg.get("std", OPENAI_STD)),
        do_convert_rgb=True,
        resize_mode="squash" if mode == "squash" else "shortest_edge",
        crop_rounding="round",
        rescale_mode="divide",
    )


def load(folder: Path, label: str, work: Path) -> Checkpoint:
    """Loads a checked OpenCLIP folder as a CLIPModel and its towers."""
    import numpy as np
    import torch
    from transformers import CLIPModel, CLIPTokenizerFast

    from cliprt.export.clip_vocab import save_clip_tokenizer
    from cliprt.export.families.clip import checkpoint_from_clip
    from cliprt.export.towers import towers_from_model
    from cliprt.runtime.preprocess import preprocess

    check(folder, label)
    model_cfg, preprocess_cfg = read_config(folder, label)
    config = clip_config(model_cfg)
    config._attn_implementation = "eager"
    state = to_clip_state_dict(read_weights(folder, label))
    with torch.device("meta"):
        model = CLIPModel(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise UnsupportedCheckpointError(
            f"the OpenCLIP weights of {label!r} do not fill a CLIP ViT of its config: missing "
            f"{missing[:6]}, unexpected {unexpected[:6]}"
        )
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:  # position_ids: rebuilt, not stored in OpenCLIP weights
            module = model.get_submodule(name.rsplit(".", 1)[0])
            n = buf.shape[-1]
            module.register_buffer(
                "position_ids", torch.arange(n).expand((1, -1)), persistent=False
            )
    model = model.float().eval()
    towers = towers_from_model(model, eos_id=49407)

    tok_dir = work / "openclip-tokenizer"
    context_length = int(model_cfg["text_cfg"].get("context_length", 77))
    save_clip_tokenizer(tok_dir, model_max_length=context_length)
    tokenizer = CLIPTokenizerFast.from_pretrained(str(tok_dir))
    pre = preprocessing(preprocess_cfg, int(model_cfg["vision_cfg"]["image_size"]), label)
    config_copy = work / CONFIG_FILE
    config_copy.write_bytes((folder / CONFIG_FILE).read_bytes())

    def pixel_values(images: list[Any]) -> Any:
        return np.stack([preprocess(im.convert("RGB"), pre) for im in images])

    add_open_clip_cleaning(tok_dir / "tokenizer.json")
    ckpt = checkpoint_from_clip(
        model,
        towers.vision,
        towers.text,
        family=NAME,
        label=label,
        tokenizer=tokenizer,
        processor=None,
        ids=(49406, 49407, int(model_cfg["text_cfg"].get("pad_id", 0))),
        preprocessing=pre,
        tokenizer_json=tok_dir / "tokenizer.json",
        preprocessor_json=config_copy,
        pixel_values=pixel_values,
        clean=open_clip_clean,
    )
    ckpt.notes["preprocess_cfg"] = preprocess_cfg
    return ckpt


# What open_clip's text cleaning (ftfy.fix_text, then html.unescape twice) changes in
# everyday text, as plain replacements the `tokenizers` normalizer can apply: curly
# quotes, Latin ligatures, fullwidth ASCII and the common named HTML entities. Not
# reproduced: ftfy's mojibake repair and numeric entities (&#8217;).
_QUOTES = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
}
_LIGATURES = {
    "\ufb00": "ff",
    "\ufb01": "fi",
    "\ufb02": "fl",
    "\ufb03": "ffi",
    "\ufb04": "ffl",
    "\ufb05": "st",
    "\ufb06": "st",
}
_FULLWIDTH = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "}
_ENTITIES = {
    "&amp;": "&",
    "&lt;": "<",
    "&gt;": ">",
    "&quot;": '"',
    "&#39;": "'",
    "&apos;": "'",
    "&nbsp;": " ",
}


def add_open_clip_cleaning(path: Path) -> None:
    """Prepends open_clip's text cleaning (see _QUOTES ... _ENTITIES) to the normalizer
    of the CLIP tokenizer.json at `path`, in place."""
    from tokenizers import Tokenizer, normalizers

    tok = Tokenizer.from_file(str(path))
    steps = [normalizers.Replace(a, b) for a, b in (_QUOTES | _LIGATURES | _FULLWIDTH).items()]
    for _ in range(2):  # html.unescape twice: "&amp;amp;" -> "&"
        steps += [normalizers.Replace(a, b) for a, b in _ENTITIES.items()]
    if tok.normalizer is not None:
        steps.append(tok.normalizer)
    tok.normalizer = normalizers.Sequence(steps)
    tok.save(str(path))


def open_clip_clean(text: str) -> str:
    """open_clip's own text cleaning where ftfy is installed (the reference the export
    checks against), else the replacements above."""
    import html

    try:
        import ftfy
    except ImportError:
        for a, b in (_QUOTES | _LIGATURES | _FULLWIDTH).items():
            text = text.replace(a, b)
        return html.unescape(html.unescape(text)).strip()
    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def build_random(arch: str, folder: Path, *, seed: int = 0) -> Path:
    """Saves a random-weight OpenCLIP checkpoint of `arch` in the layout of LAION's hub
    repos: open_clip_config.json + open_clip_model.safetensors."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPModel

    if arch not in RANDOM_ARCHS:
        raise ExportError(
            f"unknown OpenCLIP random arch {arch!r}; known: {', '.join(RANDOM_ARCHS)}"
        )
    model_cfg = RANDOM_ARCHS[arch]
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = CLIPModel(clip_config(model_cfg)).eval()
    sd = from_clip_state_dict(model.state_dict())
    del model
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / WEIGHT_FILES[0]))
    del sd
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {
            "mean": list(OPENAI_MEAN),
            "std": list(OPENAI_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder
