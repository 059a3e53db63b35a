"""Type and range checks of a parsed manifest.json, before any dataclass is built from it.

Every value the runtime uses is checked here, so that a malformed manifest is a
ModelFolderError at load, naming the key, the value and what to do, never a raw
TypeError at the first encode or a NaN in the results. Unknown keys are ignored (a newer
writer of the same format_version may add some); a new field is checked by adding a line
to :func:`check_manifest_data`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from cliprt.errors import FormatVersionError, ModelFolderError

# Bounds that no real CLIP reaches, so that a corrupt value fails here rather than as an
# allocation of terabytes later.
MAX_EMBED_DIM = 1 << 16
MAX_IMAGE_SIDE = 1 << 14
MAX_CONTEXT_LENGTH = 1 << 14
MAX_TOKEN_ID = (1 << 31) - 1
MAX_FILE_BYTES = 1 << 50
MAX_OPSET = 1000
# PIL.Image.Resampling: NEAREST 0, LANCZOS 1, BILINEAR 2, BICUBIC 3, BOX 4, HAMMING 5.
RESAMPLE_VALUES = frozenset(range(6))
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REEXPORT = "re-export the model with `cliprt export` or restore its manifest.json"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Checker:
    """Reads typed values out of nested JSON objects; each failure names the key path."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, value: Any, expected: str) -> ModelFolderError:
        return ModelFolderError(
            f"{self.where}: {key!s} must be {expected}, got {_show(value)}; {_REEXPORT}"
        )

    def get(self, obj: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in obj:
            raise ModelFolderError(f"{self.where}: {path} is missing; {_REEXPORT}")
        return obj[key]

    def obj(self, obj: Mapping[str, Any], key: str, path: str) -> dict:
        value = self.get(obj, key, path)
        if not isinstance(value, dict):
            raise self.fail(path, value, "a JSON object")
        return value

    def integer(self, obj: Mapping[str, Any], key: str, path: str, lo: int, hi: int) -> int:
        value = self.get(obj, key, path)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(path, value, f"an integer in [{lo}, {hi}]")
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, path: str) -> bool:
        value = self.get(obj, key, path)
        if not isinstance(value, bool):
            raise self.fail(path, value, "true or false")
        return value

    def string(self, obj: Mapping[str, Any], key: str, path: str, *, nonempty: bool = False) -> str:
        value = self.get(obj, key, path)
        if not isinstance(value, str) or (nonempty and not value):
            raise self.fail(path, value, "a non-empty string" if nonempty else "a string")
        return value

    def number(
        self, value: Any, path: str, *, positive: bool = False, nonzero: bool = False
    ) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        ok = ok and (not positive or value > 0) and (not nonzero or value != 0)
        if not ok:
            what = "a finite number" + (" > 0" if positive else " != 0" if nonzero else "")
            raise self.fail(path, value, what)
        return float(value)

    def triple(self, obj: Mapping[str, Any], key: str, path: str, *, positive: bool) -> None:
        value = self.get(obj, key, path)
        if not isinstance(value, list) or len(value) != 3:
            raise self.fail(path, value, "a list of 3 numbers (R, G, B)")
        for i, v in enumerate(value):
            self.number(v, f"{path}[{i}]", positive=positive)

    def file(self, obj: Mapping[str, Any], path: str) -> None:
        # Confinement to the folder is checked where the file is opened (confined_path);
        # here only the types.
        self.string(obj, "file", f"{path}.file", nonempty=True)
        sha = self.get(obj, "sha256", f"{path}.sha256")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise self.fail(f"{path}.sha256", sha, "64 lowercase hex digits")
        self.integer(obj, "bytes", f"{path}.bytes", 0, MAX_FILE_BYTES)


def check_format_version(data: Any, where: str, supported: int) -> int:
    """The manifest's format_version, checked before anything else is read.

    Raises:
        ModelFolderError: not a JSON object, or no integer format_version >= 1.
        FormatVersionError: a version newer than `supported`.
    """
    if not isinstance(data, dict):
        raise ModelFolderError(
            f"{where}: a manifest is a JSON object, got {type(data).__name__}; "
            "is this a cliprt model folder?"
        )
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFolderError(
            f"{where}: format_version must be an integer >= 1, got {_show(version)}; "
            "is this a cliprt model folder?"
        )
    if version > supported:
        raise FormatVersionError(
            f"{where} has format_version {version}, this cliprt reads up to {supported}: "
            "upgrade cliprt (pip install -U cliprt) or re-export the model with this version"
        )
    return version


def check_manifest_data(
    data: dict[str, Any], where: str, towers: tuple[str, ...], precisions: tuple[str, ...]
) -> None:
    """Checks the types and ranges of every value the runtime reads from a manifest.

    Only the `towers` x `precisions` variants are checked; other keys under "towers"
    are ignored as unknown keys are.

    Raises:
        ModelFolderError: the first malformed value, with its key path.
    """
    c = _Checker(where)
    c.string(data, "cliprt_version", "cliprt_version")
    c.string(data, "source", "source")
    c.integer(data, "embed_dim", "embed_dim", 1, MAX_EMBED_DIM)
    c.integer(data, "image_size", "image_size", 1, MAX_IMAGE_SIDE)
    # BOS and EOS take two positions: a shorter context cannot hold a prompt.
    c.integer(data, "context_length", "context_length", 2, MAX_CONTEXT_LENGTH)
    c.number(c.get(data, "logit_scale", "logit_scale"), "logit_scale", positive=True)
    for key in ("bos_id", "eos_id", "pad_id"):
        c.integer(data, key, key, 0, MAX_TOKEN_ID)
    for key in ("tokenizer", "preprocessor"):
        c.file(c.obj(data, key, key), key)

    pre = c.obj(data, "preprocessing", "preprocessing")
    for key in ("resize_shortest_edge", "crop_height", "crop_width"):
        c.integer(pre, key, f"preprocessing.{key}", 1, MAX_IMAGE_SIDE)
    resample = c.get(pre, "resample", "preprocessing.resample")
    if (
        isinstance(resample, bool)
        or not isinstance(resample, int)
        or resample not in RESAMPLE_VALUES
    ):
        raise c.fail("preprocessing.resample", resample, "a PIL resampling filter, 0..5")
    for key in ("do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_convert_rgb"):
        c.boolean(pre, key, f"preprocessing.{key}")
    c.number(
        c.get(pre, "rescale_factor", "preprocessing.rescale_factor"),
        "preprocessing.rescale_factor",
        positive=True,
    )
    c.triple(pre, "image_mean", "preprocessing.image_mean", positive=False)
    # A zero std divides by zero; a negative one is no CLIP's.
    c.triple(pre, "image_std", "preprocessing.image_std", positive=True)

    all_towers = c.obj(data, "towers", "towers")
    for tower in towers:
        variants = all_towers.get(tower, {})
        if not isinstance(variants, dict):
            raise c.fail(f"towers.{tower}", variants, "a JSON object of precisions")
        for prec in precisions:
            if prec not in variants:
                continue
            path = f"towers.{tower}.{prec}"
            v = c.obj(variants, prec, path)
            c.file(v, path)
            c.integer(v, "opset", f"{path}.opset", 1, MAX_OPSET)
            c.string(v, "input_name", f"{path}.input_name", nonempty=True)
            c.string(v, "output_name", f"{path}.output_name", nonempty=True)
            fused = v.get("fused_ops", {})
            if not isinstance(fused, dict) or not all(
                isinstance(n, int) and not isinstance(n, bool) for n in fused.values()
            ):
                raise c.fail(f"{path}.fused_ops", fused, "an object of op name -> count")
            parity = v.get("parity")
            if parity is not None:
                if not isinstance(parity, dict):
                    raise c.fail(f"{path}.parity", parity, "a JSON object or null")
                for key in ("max_abs_diff", "min_cosine", "mean_cosine"):
                    value = c.get(parity, key, f"{path}.parity.{key}")
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        raise c.fail(f"{path}.parity.{key}", value, "a number")
                c.integer(parity, "n_inputs", f"{path}.parity.n_inputs", 0, 1 << 40)

    for key in ("arch", "export"):
        if key in data and not isinstance(data[key], dict):
            raise c.fail(key, data[key], "a JSON object")
    int8 = data.get("export", {}).get("int8") or {}  # null: no int8 variant exported
    if not isinstance(int8, dict):
        raise c.fail("export.int8", int8, "a JSON object or null")
    if "reduce_range" in int8:
        c.boolean(int8, "reduce_range", "export.int8.reduce_range")
