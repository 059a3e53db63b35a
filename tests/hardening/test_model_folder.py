"""Model folder regressions of issue #12: item 3 (files confined to the folder, external
data declared) and item 6 (every manifest value checked at load, never at first encode)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cliprt
from cliprt.errors import FormatVersionError, ModelFolderError
from cliprt.manifest import MANIFEST_NAME, confined_path, read_manifest
from cliprt.runtime.onnx_external import MalformedOnnxError, external_data_locations


def _edit(folder: Path, change: Callable[[dict[str, Any]], object]) -> None:
    path = folder / MANIFEST_NAME
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _load(folder: Path, **kw: Any) -> Any:
    return cliprt.load(folder, precision="fp32", device="cpu", threads=1, spinning=False, **kw)


def _set(*keys: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        obj = data
        for key in keys[:-1]:
            obj = obj[key]
        obj[keys[-1]] = value

    return change


# -- item 6: manifest values -------------------------------------------------------------

MALFORMED = {
    "logit_scale NaN": _set("logit_scale", value=math.nan),
    "logit_scale inf": _set("logit_scale", value=math.inf),
    "logit_scale string": _set("logit_scale", value="100"),
    "image_std zeros": _set("preprocessing", "image_std", value=[0, 0, 0]),
    "image_std two values": _set("preprocessing", "image_std", value=[0.2, 0.2]),
    "image_mean NaN": _set("preprocessing", "image_mean", value=[0.5, math.nan, 0.5]),
    "context_length 0": _set("context_length", value=0),
    "context_length 1": _set("context_length", value=1),
    "context_length true": _set("context_length", value=True),
    "format_version -1": _set("format_version", value=-1),
    "format_version 0": _set("format_version", value=0),
    "format_version true": _set("format_version", value=True),
    "format_version 1.0": _set("format_version", value=1.0),
    "format_version string": _set("format_version", value="1"),
    "embed_dim string": _set("embed_dim", value="64"),
    "embed_dim huge": _set("embed_dim", value=10**30),
    "resample 99": _set("preprocessing", "resample", value=99),
    "do_resize 1": _set("preprocessing", "do_resize", value=1),
    "rescale_factor 0": _set("preprocessing", "rescale_factor", value=0),
    "crop_height 0": _set("preprocessing", "crop_height", value=0),
    "preprocessing null": _set("preprocessing", value=None),
    "towers list": _set("towers", value=[]),
    "tower variant list": _set("towers", "vision", value=["fp32"]),
    "variant file number": _set("towers", "vision", "fp32", "file", value=5),
    "variant sha256 short": _set("towers", "text", "fp32", "sha256", value="abc"),
    "variant bytes negative": _set("towers", "text", "fp32", "bytes", value=-1),
    "variant input_name empty": _set("towers", "vision", "fp32", "input_name", value=""),
    "variant opset string": _set("towers", "vision", "fp32", "opset", value="17"),
    "parity list": _set("towers", "vision", "fp32", "parity", value=[1, 2]),
    "fused_ops list": _set("towers", "vision", "fp32", "fused_ops", value=[1]),
    "tokenizer string": _set("tokenizer", value="tokenizer.json"),
    "bos_id negative": _set("bos_id", value=-1),
    "export int8 string": _set("export", value={"int8": "yes"}),
    "arch list": _set("arch", value=[]),
    "missing embed_dim": lambda d: d.pop("embed_dim"),
    # Well-typed values that contradict the files: caught at load, not at first encode.
    "pad_id beyond the vocabulary": _set("pad_id", value=10**9),
    "embed_dim not the towers'": _set("embed_dim", value=65),
    "crop not the vision input": _set("preprocessing", "crop_height", value=32),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_manifest_fails_at_load(shapes_copy: Path, case: str) -> None:
    _edit(shapes_copy, MALFORMED[case])
    with pytest.raises(ModelFolderError):
        _load(shapes_copy).close()


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2, 3]",
        '"a string"',
        "null",
        "[" * 100_000 + "]" * 100_000,  # RecursionError in json
        '{"format_version": 1' + ', "x": ' + "9" * 5000 + "}",  # past int digit limit
        "\udcff",
    ],
)
def test_unreadable_manifest_json(shapes_copy: Path, text: str) -> None:
    (shapes_copy / MANIFEST_NAME).write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ModelFolderError):
        read_manifest(shapes_copy)


def test_newer_format_version_says_so(shapes_copy: Path) -> None:
    _edit(shapes_copy, _set("format_version", value=99))
    with pytest.raises(FormatVersionError, match="format_version 99"):
        read_manifest(shapes_copy)


def test_unknown_keys_and_null_int8_are_fine(shapes_copy: Path) -> None:
    _edit(shapes_copy, _set("a_future_field", value={"x": [1, 2]}))
    assert read_manifest(shapes_copy).embed_dim == 64


# -- item 3: confinement -------------------------------------------------------------------


def _outside(tmp_path: Path) -> tuple[Path, str, int]:
    """A secret file outside the folder: its path, sha256 and size."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"top secret " * 123)
    data = secret.read_bytes()
    return secret, hashlib.sha256(data).hexdigest(), len(data)


def _assert_discloses_nothing(exc: BaseException, sha: str, size: int) -> None:
    message = str(exc)
    assert sha[:12] not in message and str(size) not in message, message


@pytest.mark.parametrize("how", ["absolute", "dotdot", "dotdot-inside"])
def test_names_leading_out_are_refused(shapes_copy: Path, tmp_path: Path, how: str) -> None:
    secret, sha, size = _outside(tmp_path)
    name = {
        "absolute": str(secret),
        "dotdot": f"../{secret.name}",
        "dotdot-inside": f"sub/../../{secret.name}",
    }[how]
    _edit(shapes_copy, _set("tokenizer", "file", value=name))
    with pytest.raises(ModelFolderError, match="not a relative path inside") as info:
        _load(shapes_copy)
    _assert_discloses_nothing(info.value, sha, size)


def test_symlink_leading_out_is_refused_even_with_the_right_hash(
    shapes_copy: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(shapes_copy / "tokenizer.json", outside / "tokenizer.json")
    os.symlink(outside / "tokenizer.json", shapes_copy / "tokenizer.json")
    with pytest.raises(ModelFolderError, match="symlink that leads out"):
        _load(shapes_copy)


def test_symlinked_onnx_leading_out_is_refused(shapes_copy: Path, tmp_path: Path) -> None:
    secret, sha, size = _outside(tmp_path)
    (shapes_copy / "vision.fp32.onnx").unlink()
    os.symlink(secret, shapes_copy / "vision.fp32.onnx")
    with pytest.raises(ModelFolderError, match="symlink that leads out") as info:
        _load(shapes_copy)
    _assert_discloses_nothing(info.value, sha, size)


def test_manifest_symlink_leading_out_is_refused(shapes_copy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "manifest-elsewhere.json"
    shutil.move(shapes_copy / MANIFEST_NAME, elsewhere)
    os.symlink(elsewhere, shapes_copy / MANIFEST_NAME)
    with pytest.raises(ModelFolderError, match="symlink that leads out"):
        read_manifest(shapes_copy)


def test_symlink_inside_the_folder_is_fine(shapes_copy: Path) -> None:
    (shapes_copy / "sub").mkdir()
    shutil.move(shapes_copy / "tokenizer.json", shapes_copy / "sub" / "tokenizer.json")
    os.symlink("sub/tokenizer.json", shapes_copy / "tokenizer.json")
    _load(shapes_copy).close()


def test_confined_path_rules(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert confined_path(tmp_path, "a/b.onnx") == (tmp_path / "a" / "b.onnx").resolve()
    for bad in ("", "/abs", "..", "a/../../x", "a\\b", "C:x", "a\0b", None, 5):
        with pytest.raises(ModelFolderError):
            confined_path(tmp_path, bad)


def test_loading_a_hostile_folder_opens_nothing_outside(shapes_copy: Path, tmp_path: Path) -> None:
    """An audit hook sees every open(): none may leave the folder."""
    secret, _, _ = _outside(tmp_path)
    opened: list[str] = []
    active = [False]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if active[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)  # cannot be removed: it records only while `active`
    for name in (str(secret), f"../{secret.name}"):
        _edit(shapes_copy, _set("towers", "vision", "fp32", "file", value=name))
        active[0] = True
        try:
            with pytest.raises(ModelFolderError):
                _load(shapes_copy)
        finally:
            active[0] = False
    assert not [p for p in opened if os.path.realpath(p) == str(secret.resolve())], opened


# -- item 3: external data -----------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_external_data_locations_of_a_handmade_model(tmp_path: Path) -> None:
    entry = _field(1, b"location") + _field(2, b"weights.bin")
    tensor = _field(8, b"w") + _field(13, entry) + _varint(14 << 3) + _varint(1)
    inline = _field(8, b"b") + _field(9, b"\0" * 8)
    node = _field(5, _field(5, tensor))  # a Constant node's attribute t
    graph = _field(5, tensor) + _field(5, inline) + _field(1, node)
    path = tmp_path / "m.onnx"
    path.write_bytes(_varint(1 << 3) + _varint(8) + _field(7, graph))
    assert external_data_locations(path) == ["weights.bin"]
    path.write_bytes(b"\x0a\xff\xff")
    with pytest.raises(MalformedOnnxError):
        external_data_locations(path)


def test_undeclared_external_data_is_refused(shapes_copy: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="writing external data needs the onnx package")
    path = shapes_copy / "vision.fp32.onnx"
    model = onnx.load(str(path))
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="vision.data", size_threshold=0
    )
    data = path.read_bytes()
    _edit(
        shapes_copy,
        lambda d: d["towers"]["vision"]["fp32"].update(
            sha256=hashlib.sha256(data).hexdigest(), bytes=len(data)
        ),
    )
    with pytest.raises(ModelFolderError, match=r"external data \['vision.data'\]"):
        _load(shapes_copy)
