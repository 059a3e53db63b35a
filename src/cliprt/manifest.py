"""The model folder contract: manifest.json, shared by the exporter (writes it) and the
runtime (reads it). Torch-free.

A model folder holds manifest.json, {vision,text}.{fp32,fp16,int8}.onnx, tokenizer.json
and preprocessor_config.json. Files are reached only through the manifest, and each is
checked against its recorded sha256 and size before use. Unknown keys are ignored, so an
older cliprt reads a newer manifest of the same format_version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cliprt.errors import FormatVersionError, ModelFolderError

# 2 added: family, scoring, logit_bias, text_padding, the preprocessing variants
# (resize_mode, crop_rounding, rescale_mode) and per-variant external data files. Every
# field added in 2 has a default that reproduces what a version-1 folder meant.
FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
TOWERS = ("vision", "text")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class FileEntry:
    """A file of the folder with the checksum that guards it."""

    file: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Parity:
    """Agreement of an exported variant with the PyTorch tower, measured at export on
    L2-normalised embeddings."""

    max_abs_diff: float
    min_cosine: float
    mean_cosine: float
    n_inputs: int


@dataclass(frozen=True)
class Variant:
    """One ONNX file of a tower at one precision."""

    file: str
    sha256: str
    bytes: int
    opset: int
    input_name: str
    output_name: str
    fused_ops: dict[str, int] = field(default_factory=dict)
    parity: Parity | None = None
    # ONNX external data files (towers over 2 GB), each checked like the .onnx file.
    data_files: tuple[FileEntry, ...] = ()
    # False where onnxruntime's optimizer cannot fuse this tower's attention (it then
    # runs unfused, slower); the README's table says which families.
    attention_fused: bool = True


@dataclass(frozen=True)
class Preprocessing:
    """CLIPImageProcessor's parameters, as the runtime applies them."""

    resize_shortest_edge: int
    crop_height: int
    crop_width: int
    resample: int  # PIL.Image.Resampling value; 3 == BICUBIC
    do_resize: bool
    do_center_crop: bool
    do_rescale: bool
    rescale_factor: float
    do_normalize: bool
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    do_convert_rgb: bool
    # "shortest_edge": resize the short side to resize_shortest_edge, long side int()
    # (transformers, torchvision); "squash": resize to crop_height x crop_width ignoring
    # the aspect ratio (SigLIP, OpenCLIP resize_mode="squash").
    resize_mode: str = "shortest_edge"
    # Centre-crop offset: "floor" ((H - crop) // 2, transformers) or "round"
    # (int(round((H - crop) / 2)), torchvision's CenterCrop as OpenCLIP uses it).
    crop_rounding: str = "floor"
    # "multiply": float64 x * rescale_factor then float32 (transformers); "divide":
    # float32 x / 255 (torchvision's ToTensor).
    rescale_mode: str = "multiply"


@dataclass(frozen=True)
class Manifest:
    """Everything the runtime needs to know about a model folder."""

    format_version: int
    cliprt_version: str
    source: str
    embed_dim: int
    image_size: int
    context_length: int
    logit_scale: float
    bos_id: int
    eos_id: int
    pad_id: int
    tokenizer: FileEntry
    preprocessor: FileEntry
    preprocessing: Preprocessing
    # towers[tower][precision] -> Variant
    towers: dict[str, dict[str, Variant]]
    arch: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    # The checkpoint family: "clip" (transformers CLIPModel), "openclip", "siglip".
    family: str = "clip"
    # How classify turns cosines into scores: "softmax" over labels of
    # logit_scale * cos (CLIP, OpenCLIP) or "sigmoid" of logit_scale * cos + logit_bias
    # per pair (SigLIP).
    scoring: str = "softmax"
    logit_bias: float = 0.0
    # "longest": a batch is padded to its longest prompt (CLIP's causal mask makes the
    # padding irrelevant); "max_length": every prompt is padded to context_length (SigLIP
    # pools the last position and was trained that way).
    text_padding: str = "longest"
    # Where the pad ids go: "right" (CLIP, SigLIP) or "left" (Gemma's tokenizer, as the
    # SigLIP 2 processor pads).
    padding_side: str = "right"

    def precisions(self, tower: str) -> tuple[str, ...]:
        """Precisions present for `tower`, in PRECISIONS order."""
        return tuple(p for p in PRECISIONS if p in self.towers.get(tower, {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pick(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    # Unknown keys are ignored (a newer writer may add fields); missing ones raise.
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def manifest_from_dict(data: dict[str, Any], *, where: str = MANIFEST_NAME) -> Manifest:
    """Builds a Manifest from parsed JSON, checking the format version first.

    Raises:
        FormatVersionError: written by a newer cliprt.
        ModelFolderError: a required key is missing or malformed.
    """
    version = data.get("format_version")
    if not isinstance(version, int):
        raise ModelFolderError(
            f"{where}: no integer 'format_version'; is this a cliprt model folder?"
        )
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{where} has format_version {version}, this cliprt reads up to {FORMAT_VERSION}: "
            "upgrade cliprt (pip install -U cliprt) or re-export the model with this version"
        )
    _check_choices(data, where)
    try:
        towers = {
            tower: {
                prec: Variant(
                    **{
                        **_pick(Variant, v),
                        "parity": Parity(**_pick(Parity, v["parity"])) if v.get("parity") else None,
                        "data_files": tuple(
                            FileEntry(**_pick(FileEntry, d)) for d in v.get("data_files") or ()
                        ),
                    }
                )
                for prec, v in variants.items()
            }
            for tower, variants in data["towers"].items()
        }
        pre = _pick(Preprocessing, data["preprocessing"])
        pre["image_mean"] = tuple(pre["image_mean"])
        pre["image_std"] = tuple(pre["image_std"])
        return Manifest(
            **{
                **_pick(Manifest, data),
                "tokenizer": FileEntry(**_pick(FileEntry, data["tokenizer"])),
                "preprocessor": FileEntry(**_pick(FileEntry, data["preprocessor"])),
                "preprocessing": Preprocessing(**pre),
                "towers": towers,
            }
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ModelFolderError(
            f"{where} is malformed ({type(exc).__name__}: {exc}); re-export the model"
        ) from exc


# The values this reader knows for each enumerated field (a folder with another value
# was written by a cliprt that knows more, whatever its format_version says).
CHOICES = {
    "scoring": ("softmax", "sigmoid"),
    "text_padding": ("longest", "max_length"),
    "padding_side": ("right", "left"),
    "resize_mode": ("shortest_edge", "squash"),
    "crop_rounding": ("floor", "round"),
    "rescale_mode": ("multiply", "divide"),
}


def _check_choices(data: dict[str, Any], where: str) -> None:
    pre = data.get("preprocessing") if isinstance(data.get("preprocessing"), dict) else {}
    for key, known in CHOICES.items():
        value = data.get(key, pre.get(key, known[0]))
        if value not in known:
            raise ModelFolderError(
                f"{where}: {key} {value!r} is unknown to this cliprt (known: "
                f"{', '.join(known)}); upgrade cliprt or re-export the model"
            )


def read_manifest(folder: str | os.PathLike[str]) -> Manifest:
    """Reads and checks `folder`/manifest.json.

    Raises:
        ModelFolderError: no folder, no manifest, or unreadable JSON.
        FormatVersionError: written by a newer cliprt.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ModelFolderError(
            f"model folder {str(folder)!r} does not exist; run `cliprt export` first"
        )
    if not path.is_file():
        raise ModelFolderError(
            f"{str(folder)!r} has no {MANIFEST_NAME}: not a cliprt model folder (export one with `cliprt export`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{path} cannot be read as JSON: {exc}") from exc
    return manifest_from_dict(data, where=str(path))


def sha256_file(path: str | os.PathLike[str], *, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks of `chunk_bytes` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def file_entry(folder: str | os.PathLike[str], name: str) -> FileEntry:
    """The FileEntry (name, sha256, size) of `folder`/`name` as it is now."""
    path = Path(folder) / name
    return FileEntry(file=name, sha256=sha256_file(path), bytes=path.stat().st_size)


def verified_path(folder: str | os.PathLike[str], entry: FileEntry | Variant) -> Path:
    """The path of a manifest file after checking it exists, has its size and sha256.

    Raises:
        ModelFolderError: missing, resized or altered, with what to do.
    """
    path = Path(folder) / entry.file
    if not path.is_file():
        raise ModelFolderError(
            f"{path} is listed in {MANIFEST_NAME} but missing; re-export the model"
        )
    size = path.stat().st_size
    if size != entry.bytes:
        raise ModelFolderError(
            f"{path} has {size} bytes, {MANIFEST_NAME} says {entry.bytes}: the file was altered or "
            "truncated; re-export the model or restore the file"
        )
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise ModelFolderError(
            f"{path} sha256 {digest[:12]}... differs from {MANIFEST_NAME} ({entry.sha256[:12]}...): "
            "the file was altered; re-export the model or restore the file"
        )
    return path


def confined_path(folder: str | os.PathLike[str], name: str) -> Path:
    """`folder`/`name`, refusing a name that leaves the folder (absolute, `..`, links).

    Raises:
        ModelFolderError: the name points outside the model folder.
    """
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if Path(name).is_absolute() or not path.is_relative_to(root) or path == root:
        raise ModelFolderError(
            f"{MANIFEST_NAME} in {str(folder)!r} names {name!r}, which is outside the model "
            "folder; the manifest was altered: re-export the model"
        )
    return path


def verified_variant(folder: str | os.PathLike[str], variant: Variant) -> Path:
    """The .onnx path of a variant after checking it and each of its external data files
    (size and sha256), and that the .onnx references no data file the manifest lacks.

    Raises:
        ModelFolderError: a missing, altered or unlisted file, with what to do.
    """
    listed = {d.file for d in variant.data_files}
    for entry in variant.data_files:
        confined_path(folder, entry.file)
        verified_path(folder, entry)
    path = verified_path(folder, variant)
    unlisted = sorted(set(external_data_names(path)) - listed)
    if unlisted:
        raise ModelFolderError(
            f"{path} reads external data {unlisted} that {MANIFEST_NAME} does not list (so "
            "no checksum guards it); re-export the model"
        )
    return path


def external_data_names(path: str | os.PathLike[str]) -> list[str]:
    """The external data file names an .onnx file refers to (relative to its folder),
    found without protobuf: the key "location" followed by its value in the raw bytes.

    A cheap scan, so that checking a folder does not need the onnx package; a false
    positive can only make the check stricter.
    """
    import re

    # StringStringEntryProto: field 1 (key) = "location", field 2 (value) = the name
    # (names under 128 bytes: a one-byte length). Read in chunks that overlap by more
    # than a whole entry, so a 2 GB single-file graph costs no 2 GB of memory.
    pattern = re.compile(rb"\x0a\x08location\x12([\x01-\x7f])")
    chunk, overlap = 1 << 24, 160
    names: set[str] = set()
    with open(path, "rb") as f:
        tail = b""
        while block := f.read(chunk):
            data = tail + block
            for m in pattern.finditer(data):
                start, n = m.end(), m.group(1)[0]
                if start + n <= len(data):
                    names.add(data[start : start + n].decode("utf-8", "replace"))
            tail = data[-overlap:]
    return sorted(names)


def write_manifest(folder: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Writes manifest.json atomically (temp file + rename) into `folder`."""
    folder = Path(folder)
    data = json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, folder / MANIFEST_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder / MANIFEST_NAME
