"""Property tests of the manifest reader: any JSON value in any field (or the field
removed, or a whole arbitrary document) gives a ModelFolderError or a Manifest whose
every value has its type and range; resolving its files never opens anything outside
the model folder."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cliprt.errors import ModelFolderError
from cliprt.manifest import (
    MANIFEST_NAME,
    PRECISIONS,
    TOWERS,
    Manifest,
    read_manifest,
    verified_path,
)
from tests.hardening.support import tally

SURFACE = "read_manifest (fuzzed manifests)"
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE_NAMES = st.sampled_from(
    ["/etc/passwd", "../secret.bin", "sub/../../secret.bin", "link-out", "", ".", "/", "\0"]
)


def _key_paths(obj: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*prefix, key)
            yield from _key_paths(value, (*prefix, key))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped folder beside a secret file and with a symlink leading to it."""
    from cliprt.shipped import shipped_folder

    root = tmp_path_factory.mktemp("fuzz")
    (root / "secret.bin").write_bytes(b"secret")
    src = shipped_folder("shapes")
    assert src is not None
    folder = Path(shutil.copytree(src, root / "model"))
    os.symlink(root / "secret.bin", folder / "link-out")
    return folder


ORIGINAL: dict[str, Any] = {}
KEY_PATHS: list[tuple[str, ...]] = []


def _original(folder: Path) -> dict[str, Any]:
    if not ORIGINAL:
        ORIGINAL.update(json.loads((folder / MANIFEST_NAME).read_text()))
        KEY_PATHS.extend(_key_paths(ORIGINAL))
    return json.loads(json.dumps(ORIGINAL))


_OPENED: list[str] = []
_ACTIVE = [False]


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _ACTIVE[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_hook)  # records only while _ACTIVE[0]


def _check_manifest(m: Manifest) -> None:
    """Every value the runtime reads has its type and range."""
    for name in ("embed_dim", "image_size", "bos_id", "eos_id", "pad_id"):
        value = getattr(m, name)
        assert isinstance(value, int) and not isinstance(value, bool) and value >= 0
    assert m.embed_dim >= 1 and m.context_length >= 2
    assert math.isfinite(m.logit_scale) and m.logit_scale > 0
    pre = m.preprocessing
    assert all(math.isfinite(x) for x in pre.image_mean) and len(pre.image_mean) == 3
    assert all(math.isfinite(x) and x > 0 for x in pre.image_std) and len(pre.image_std) == 3
    assert pre.crop_height >= 1 and pre.crop_width >= 1 and pre.resize_shortest_edge >= 1
    for flag in (pre.do_resize, pre.do_center_crop, pre.do_rescale, pre.do_normalize):
        assert isinstance(flag, bool)
    assert set(m.towers) <= set(TOWERS)
    for variants in m.towers.values():
        assert set(variants) <= set(PRECISIONS)


ORIGINAL_ENTRIES: list[Any] = []


def _entries(m: Manifest) -> list[Any]:
    return [
        m.tokenizer,
        m.preprocessor,
        *(v for variants in m.towers.values() for v in variants.values()),
    ]


def _read_and_resolve(folder: Path, data: Any) -> None:
    original = _original(folder)
    if not ORIGINAL_ENTRIES:
        ORIGINAL_ENTRIES.extend(_entries(read_manifest(folder)))
    (folder / MANIFEST_NAME).write_text(json.dumps(data), encoding="utf-8")
    _OPENED.clear()
    _ACTIVE[0] = True
    try:
        m = read_manifest(folder)
        _check_manifest(m)
        # Resolve (and hash) the entries the fuzzing changed; the others are the
        # shipped ones, verified by every other test.
        for entry in _entries(m):
            if entry not in ORIGINAL_ENTRIES:
                with contextlib.suppress(ModelFolderError):
                    verified_path(folder, entry)
    except ModelFolderError:
        tally(SURFACE, "typed_error")
    except Exception:
        tally(SURFACE, "foreign_exception")
        raise
    else:
        tally(SURFACE, "ok")
    finally:
        _ACTIVE[0] = False
        (folder / MANIFEST_NAME).write_text(json.dumps(original), encoding="utf-8")
    root = folder.resolve()
    outside = [p for p in _OPENED if root not in Path(os.path.realpath(p)).parents]
    assert not outside, outside


@FUZZ
@given(data=st.data(), value=JSON)
def test_any_json_value_in_any_field(folder: Path, data: st.DataObject, value: Any) -> None:
    manifest = _original(folder)
    path = data.draw(st.sampled_from(KEY_PATHS))
    obj = manifest
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value
    _read_and_resolve(folder, manifest)


@FUZZ
@given(data=st.data())
def test_any_field_removed(folder: Path, data: st.DataObject) -> None:
    manifest = _original(folder)
    path = data.draw(st.sampled_from(KEY_PATHS))
    obj = manifest
    for key in path[:-1]:
        obj = obj[key]
    del obj[path[-1]]
    _read_and_resolve(folder, manifest)


@FUZZ
@given(data=st.data(), name=st.one_of(HOSTILE_NAMES, st.text(max_size=30)))
def test_any_file_name(folder: Path, data: st.DataObject, name: str) -> None:
    manifest = _original(folder)
    paths = [p for p in KEY_PATHS if p[-1] == "file"]
    path = data.draw(st.sampled_from(paths))
    obj = manifest
    for key in path[:-1]:
        obj = obj[key]
    obj["file"] = name
    _read_and_resolve(folder, manifest)


@FUZZ
@given(document=JSON)
def test_any_document(folder: Path, document: Any) -> None:
    _original(folder)
    _read_and_resolve(folder, document)
