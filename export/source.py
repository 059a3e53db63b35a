"""Resolving SRC (a local folder, a hub id, an OpenCLIP name, or random:NAME) to a
checked local checkpoint folder and its family. Every source ends in the same folder
path: the hub and random sources only produce a folder first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cliprt.errors import ExportError, UnsupportedCheckpointError
from cliprt.export.random_checkpoints import (
    RANDOM_PREFIX,
    all_random_archs,
    build_random_checkpoint,
    parse_random_source,
)

SUPPORTED_MODEL_TYPES = ("clip",)
# The file names of a Hugging Face checkpoint folder that cliprt reads, and under which
# the exporter writes them into a model folder: one owner, imported by the families and
# the pipeline.
PREPROCESSOR_FILE = "preprocessor_config.json"
TOKENIZER_FILE = "tokenizer.json"
# A fast tokenizer file, or the slow files it can be rebuilt from.
TOKENIZER_FILES = ((TOKENIZER_FILE,), ("vocab.json", "merges.txt"))
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


@dataclass(frozen=True)
class ResolvedSource:
    """A checkpoint folder ready to load, and how the user named it."""

    folder: Path
    label: str  # what the manifest records as `source`
    kind: str  # "folder" | "hub" | "random"
    family: str = "clip"  # a key of families.SUPPORTED


def resolve_source(source: str, workdir: str | Path) -> ResolvedSource:
    """Turns SRC into a checked local checkpoint folder and its family.

    Args:
        source: a local folder (transformers CLIP/SigLIP, or OpenCLIP's
            open_clip_config.json + weights), a hub id ("openai/clip-vit-base-patch32",
            "google/siglip-base-patch16-224"), an OpenCLIP name ("hf-hub:ORG/NAME",
            "ViT-B-32/laion2b_s34b_b79k"), or random:NAME (all_random_archs()).
        workdir: scratch folder for random checkpoints (deleted by the caller).

    Raises:
        UnsupportedCheckpointError: a checkpoint of another family.
        ExportError: unknown random arch, hub unreachable, or a folder that is not a
            complete checkpoint (the message says what is missing and what to do).
    """
    arch = parse_random_source(source)
    if arch is not None:
        folder = build_random_checkpoint(arch, Path(workdir) / f"random-{arch}", seed=0)
        return _checked(folder, source, source, "random")
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ExportError(f"{source!r} is a file; SRC must be a checkpoint folder")
        return _checked(path, source, str(path.resolve()), "folder")
    from cliprt.export.families.openclip import openclip_hub_id

    hub_id = openclip_hub_id(source)  # hf-hub:org/name, or ARCH/pretrained_tag
    if hub_id is not None:
        return _checked(download_openclip(hub_id, source), source, source, "hub")
    if _looks_like_hub_id(source):
        return _checked(download(source), source, source, "hub")
    known = ", ".join(RANDOM_PREFIX + a for a in all_random_archs())
    raise ExportError(
        f"SRC {source!r} is neither an existing folder nor a hub id (owner/name); "
        f"give a checkpoint folder, a hub id, an OpenCLIP name (hf-hub:ORG/NAME), or one of {known}"
    )


def _checked(folder: Path, source: str, label: str, kind: str) -> ResolvedSource:
    from cliprt.export.families import detect, family_module

    family = detect(folder, source)
    module = family_module(family)
    folder = module.check(folder, source) if family != "clip" else check_checkpoint(folder, source)
    return ResolvedSource(folder, label, kind, family)


def download_openclip(repo_id: str, label: str) -> Path:
    """Downloads an OpenCLIP hub repo's config and weights (huggingface_hub's cache).

    Raises:
        ExportError: huggingface_hub missing, hub unreachable, or no such repo.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ExportError(
            f"{label!r} names an OpenCLIP hub checkpoint but huggingface_hub is not "
            "installed: pip install 'cliprt[export]', or pass a local folder"
        ) from exc
    try:
        folder = snapshot_download(
            repo_id, allow_patterns=["open_clip_config.json", "open_clip_model.safetensors"]
        )
        if not (Path(folder) / "open_clip_model.safetensors").is_file():
            folder = snapshot_download(
                repo_id, allow_patterns=["open_clip_config.json", "open_clip_pytorch_model.bin"]
            )
    except Exception as exc:  # offline, 404, auth: all reported the same way
        raise ExportError(
            f"cannot download the OpenCLIP checkpoint {repo_id!r} (for {label!r}) from the "
            f"Hugging Face hub ({type(exc).__name__}: {exc}). Check the name and the "
            "network, or download the repo elsewhere and pass its folder"
        ) from exc
    return Path(folder)


def _looks_like_hub_id(source: str) -> bool:
    parts = source.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and not source.startswith((".", "~"))


def download(repo_id: str) -> Path:
    """Downloads the files of a hub checkpoint that the export reads (huggingface_hub's
    cache), returning the snapshot folder.

    Raises:
        ExportError: huggingface_hub is missing, the hub is unreachable, or no such repo.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ExportError(
            f"{repo_id!r} looks like a hub id but huggingface_hub is not installed: "
            "pip install 'cliprt[export]', or pass a local checkpoint folder"
        ) from exc
    # *.model: SigLIP's spiece.model / Gemma's tokenizer.model
    patterns = ["*.json", "*.txt", "*.model", "*.safetensors"]
    try:
        folder = snapshot_download(repo_id, allow_patterns=patterns)
        if not any(Path(folder).glob("*.safetensors")):
            folder = snapshot_download(repo_id, allow_patterns=[*patterns, "pytorch_model.bin"])
    except Exception as exc:  # offline, 404, auth, rate limits: all reported the same way
        raise ExportError(
            f"cannot download {repo_id!r} from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}); no local folder of that name exists either. "
            "Check the id and the network, or download the checkpoint elsewhere and pass "
            "its folder"
        ) from exc
    return Path(folder)


def check_checkpoint(folder: Path, label: str) -> Path:
    """Checks that `folder` is a complete HF CLIP checkpoint; returns it.

    Raises:
        ExportError: no config.json, a model_type other than CLIP, no weights, no
            tokenizer files or no preprocessor_config.json.
    """
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ExportError(
            f"{label!r} has no config.json: not a Hugging Face checkpoint folder "
            "(save one with CLIPModel.save_pretrained)"
        )
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{config_path} cannot be read as JSON: {exc}") from exc
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedCheckpointError(
            f"{label!r} is a {model_type!r} checkpoint; cliprt exports "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (transformers CLIPModel) checkpoints only"
        )
    if not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise ExportError(
            f"{label!r} has no weights (none of {', '.join(WEIGHT_FILES)}); "
            "save the model with CLIPModel.save_pretrained"
        )
    if not any(all((folder / f).is_file() for f in group) for group in TOKENIZER_FILES):
        raise ExportError(
            f"{label!r} has no tokenizer files (tokenizer.json, or vocab.json + merges.txt); "
            "save them next to the weights: CLIPTokenizerFast.from_pretrained(...)"
            f".save_pretrained({str(folder)!r})"
        )
    if not (folder / PREPROCESSOR_FILE).is_file():
        raise ExportError(
            f"{label!r} has no {PREPROCESSOR_FILE}; save it next to the weights: "
            f"CLIPImageProcessor.from_pretrained(...).save_pretrained({str(folder)!r})"
        )
    return folder
