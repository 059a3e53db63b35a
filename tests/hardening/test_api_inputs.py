"""API regressions of issue #12: items 4 (threads at load), 5 (non-regular image paths),
8 (foreign exceptions: Pillow, tokenizers, load() arguments, use after close) and 9's
max_image_pixels above Pillow's own guard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import cliprt
from cliprt.errors import InputError, ModelClosedError
from tests.hardening.corpus import dds
from tests.helpers import call_with_timeout


def _in_thread(call: Any, timeout: float = 30) -> BaseException | None:
    """Runs `call`; fails the test if it is still running after `timeout` seconds."""
    hung, exc = call_with_timeout(call, timeout)
    assert not hung, f"{call} hangs"
    return exc


# -- item 5: FIFOs and other non-regular files ----------------------------------------------


def test_fifo_as_image_path_is_refused_without_blocking(shapes: Any, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    exc = _in_thread(lambda: shapes.encode_images([str(fifo)]))
    assert isinstance(exc, InputError) and "image 0" in str(exc) and "FIFO" in str(exc)


@pytest.mark.parametrize("target", ["folder", "/dev/null", "/dev/zero"])
def test_folders_and_devices_are_refused(shapes: Any, tmp_path: Path, target: str) -> None:
    if target == "folder":
        path = tmp_path / "folder.png"
        path.mkdir()
    else:
        if not os.path.exists(target):
            pytest.skip(f"no {target} here")
        path = Path(target)
    ok = tmp_path / "ok.png"
    Image.new("RGB", (32, 32), "red").save(ok)
    exc = _in_thread(lambda: shapes.encode_images([ok, ok, path]))
    assert isinstance(exc, InputError), exc
    assert f"image 2 ({str(path)!r})" in str(exc)


# -- item 8: foreign exceptions ---------------------------------------------------------------


@pytest.mark.parametrize("fourcc", [b"ABCD", b"DX10"])
def test_pillow_notimplementederror_is_typed(shapes: Any, tmp_path: Path, fourcc: bytes) -> None:
    path = tmp_path / "texture.dds"
    path.write_bytes(dds(fourcc=fourcc))
    with pytest.raises(InputError, match=r"image 0 \(.*texture.dds'\): cannot decode"):
        shapes.encode_images([path])
    with pytest.raises(InputError, match=r"image 1 \(bytes\): cannot decode"):
        shapes.encode_images([np.zeros((8, 8, 3), np.uint8), path.read_bytes()])


@pytest.mark.parametrize("text", ["\udcff", "ok then \ud800 lone"])
def test_lone_surrogate_names_the_item(shapes: Any, text: str) -> None:
    with pytest.raises(InputError, match=r"text 1 .* is not valid Unicode"):
        shapes.encode_texts(["a red circle", text])
    with pytest.raises(InputError, match=r"label 0 .* is not valid Unicode"):
        shapes.classify([np.zeros((8, 8, 3), np.uint8)], [text])


BAD_LOAD_ARGS: list[tuple[dict[str, Any], str]] = [
    ({"model": None}, "model must be a folder path"),
    ({"model": 42}, "model must be a folder path"),
    ({"model": ["shapes"]}, "model must be a folder path"),
    ({"precision": 32}, "precision must be a string"),
    ({"device": 1.5}, "device must be a string"),
    ({"threads": 5000}, "threads must be a positive integer, at most 256"),
    ({"threads": 10**6}, "threads must be a positive integer"),
    ({"threads": 2**31}, "threads must be a positive integer"),
    ({"threads": True}, "threads must be a positive integer"),
    ({"threads": 2.0}, "threads must be a positive integer"),
    ({"threads": "4"}, "threads must be a positive integer"),
    ({"decode_workers": 0}, "decode_workers must be a positive integer"),
    ({"decode_workers": 10**6}, "decode_workers must be a positive integer"),
    ({"decode_workers": "x"}, "decode_workers must be a positive integer"),
    ({"spinning": "no"}, "spinning must be True or False"),
    ({"exif_transpose": None}, "exif_transpose must be True or False"),
    ({"session_options": {"threads": 1}}, "session_options must be an onnxruntime"),
    ({"cuda": {"gpu_mem_limit": 1}}, "cuda must be a cliprt.runtime.CudaOptions"),
    ({"warmup_batches": 3}, "warmup_batches must be an iterable"),
    ({"warmup_batches": "1"}, "warmup_batches must be batch sizes"),
    ({"warmup_batches": ("x",)}, "batch_size must be a positive int"),
    ({"max_image_pixels": True}, "max_image_pixels must be a positive int"),
    ({"max_image_pixels": 1.5}, "max_image_pixels must be a positive int"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_LOAD_ARGS, ids=[str(k) for k, _ in BAD_LOAD_ARGS])
def test_wrong_load_arguments_are_input_errors(kwargs: dict[str, Any], match: str) -> None:
    args = {"model": "shapes", "device": "cpu", **kwargs}
    with pytest.raises(InputError, match=match):
        cliprt.load(**args)


def test_max_image_pixels_above_pillows_guard_is_refused_at_load() -> None:
    limit = Image.MAX_IMAGE_PIXELS
    assert limit is not None
    with pytest.raises(InputError, match=r"above Pillow's own guard PIL.Image.MAX_IMAGE_PIXELS"):
        cliprt.load("shapes", device="cpu", max_image_pixels=limit + 1)
    cliprt.load("shapes", device="cpu", threads=1, max_image_pixels=limit).close()


def test_use_after_close_is_typed(tmp_path: Path) -> None:
    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=1, spinning=False)
    images = [np.zeros((16, 16, 3), np.uint8)] * 3
    model.encode_images(images)
    model.close()
    for call in (
        lambda: model.encode_images(images),
        lambda: model.encode_images(images[:1]),
        lambda: model.encode_texts(["a red circle"]),
        lambda: model.classify(images, ["a", "b"]),
    ):
        with pytest.raises(ModelClosedError, match="was closed; load it again"):
            call()
