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
import stat
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from cliprt.errors import ModelFolderError
from cliprt.manifest_check import check_format_version, check_manifest_data

# 2 added: family, scoring, logit_bias, text_padding, the preprocessing variants
# (resize_mode, crop_rounding, rescale_mode) and per-variant external data files. Every
# field added in 2 has a default that reproduces what a version-1 folder meant.
FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
TOWERS = ("vision", "text")
PRECISIONS = ("fp32", "fp16", "int8")
# A manifest is a few kB; anything far larger is not one (and is not read whole).
MAX_MANIFEST_BYTES = 16 << 20


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
    # Device probes (cliprt.runtime.probes.ProbeRecord.to_dict): recipe, texts and the
    # PyTorch reference embeddings, for `cliprt verify`. Empty in older folders.
    probes: dict[str, Any] = field(default_factory=dict)
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
    """Builds a Manifest from parsed JSON, checking the format version first, then the
    type and range of every value (cliprt.manifest_check).

    Raises:
        FormatVersionError: written by a newer cliprt.
        ModelFolderError: not an object, a required key missing, or a value malformed.
    """
    check_format_version(data, where, FORMAT_VERSION)
    check_manifest_data(data, where, TOWERS, PRECISIONS)
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
                for prec, v in data["towers"].get(tower, {}).items()
                if prec in PRECISIONS
            }
            for tower in TOWERS
            if tower in data["towers"]
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
    raw_pre = data.get("preprocessing")
    pre: dict[str, Any] = raw_pre if isinstance(raw_pre, dict) else {}
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
        ModelFolderError: no folder, no manifest, unreadable JSON or a malformed value.
        FormatVersionError: written by a newer cliprt.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(
            f"model folder {str(folder)!r} does not exist; run `cliprt export` first"
        )
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ModelFolderError(
            f"{str(folder)!r} has no {MANIFEST_NAME}: not a cliprt model folder (export one with `cliprt export`)"
        )
    path = confined_path(folder, MANIFEST_NAME)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ModelFolderError(
                f"{path} is larger than {MAX_MANIFEST_BYTES} bytes: not a cliprt manifest; "
                "re-export the model"
            )
        data = json.loads(raw.decode("utf-8"))
    except ModelFolderError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: bad JSON, or an integer literal past Python's digit limit;
        # RecursionError: arrays nested thousands deep.
        raise ModelFolderError(
            f"{path} cannot be read as JSON ({type(exc).__name__}: {str(exc)[:200]}); "
            "re-export the model"
        ) from exc
    return manifest_from_dict(data, where=str(path))


def confined_path(
    folder: str | os.PathLike[str], name: object, *, what: str = MANIFEST_NAME
) -> Path:
    """The real path of the file `name` of a model folder, refused if it could lead out.

    `name` must be a plain relative path (no absolute path, drive, backslash, ``..`` or
    NUL), and what it resolves to, symlinks followed, must lie inside `folder`. Nothing
    outside the folder is opened or stat'ed, so no message discloses anything of it.

    Args:
        folder: the model folder.
        name: the file name as the manifest (or another listing) gives it.
        what: where the name came from, for messages.

    Raises:
        ModelFolderError: the name is not confined to the folder.
    """
    if not isinstance(name, str) or not name or "\0" in name:
        raise ModelFolderError(
            f"{what} names a file {name!r}, which is not a file name; re-export the model"
        )
    pure = PurePosixPath(name)
    if pure.is_absolute() or PureWindowsPath(name).drive or "\\" in name or ".." in pure.parts:
        raise ModelFolderError(
            f"{what} names the file {name!r}, which is not a relative path inside the model "
            "folder; cliprt reads only files inside the folder: re-export the model"
        )
    root = Path(folder).resolve()
    try:
        real = (root / pure).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ModelFolderError(
            f"{what} names the file {name!r}, which cannot be resolved ({exc}); re-export the model"
        ) from exc
    if real != root and root not in real.parents:
        raise ModelFolderError(
            f"{what} names the file {name!r}, a symlink that leads out of the model folder "
            f"{str(folder)!r}; cliprt reads only files inside the folder: replace the link by "
            "the file or re-export the model"
        )
    return real


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
    """The path of a manifest file after checking it lies inside `folder`, is a regular
    file, and has its recorded size and sha256.

    Raises:
        ModelFolderError: outside the folder, missing, not a regular file, resized or
            altered, with what to do.
    """
    path = confined_path(folder, entry.file)
    try:
        st = path.stat()
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        what = "missing" if st is None else "not a regular file"
        raise ModelFolderError(
            f"{path} is listed in {MANIFEST_NAME} but {what}; re-export the model"
        )
    size = st.st_size
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
