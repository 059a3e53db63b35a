"""Preprocessing equals transformers' CLIPImageProcessor (PIL path) to <= 1e-6 on images
of every size, aspect ratio and mode; decoding errors name the item."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from cliprt.errors import InputError
from cliprt.manifest import Preprocessing
from cliprt.runtime.preprocess import DecodeOptions, decode_image, preprocess, resize_output_size

transformers = pytest.importorskip("transformers")

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
PRE = Preprocessing(
    resize_shortest_edge=224,
    crop_height=224,
    crop_width=224,
    resample=3,
    do_resize=True,
    do_center_crop=True,
    do_rescale=True,
    rescale_factor=1 / 255,
    do_normalize=True,
    image_mean=MEAN,
    image_std=STD,
    do_convert_rgb=True,
)


@pytest.fixture(scope="module")
def processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, use_fast=False
    )


def reference(processor, im: Image.Image) -> np.ndarray:
    # channels_last explicitly: transformers guesses 1xWx3 or 3xWx3 arrays as channels-first.
    out = processor(images=im, return_tensors="np", input_data_format="channels_last")
    return out["pixel_values"][0]


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _rgb(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    # Smooth gradients plus noise: resampling of real-looking content, not only noise.
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 7 + y * 3) % 256, (x * 2 + y * 5) % 256, (x ^ y) % 256], axis=-1)
    noise = rng.integers(-40, 40, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def _in_mode(rng: np.random.Generator, mode: str, w: int, h: int) -> Image.Image:
    rgb = _rgb(rng, w, h)
    if mode == "LA":
        return rgb.convert("LA")
    if mode == "P+transparency":
        p = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
        p.info["transparency"] = 3
        return Image.open(io.BytesIO(_encode(p, "PNG")))
    if mode == "I;16":
        arr = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        return Image.fromarray(arr)  # uint16 -> "I;16"
    if mode == "I":
        return Image.fromarray(rng.integers(-5, 70000, (h, w)).astype(np.int32))
    if mode == "F":
        return Image.fromarray(rng.uniform(-20, 300, (h, w)).astype(np.float32))
    if mode == "RGBA":
        rgba = rgb.convert("RGBA")
        rgba.putalpha(Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)))
        return rgba
    return rgb.convert(mode)  # L, P, CMYK, 1, YCbCr, HSV...


def _cases() -> list[tuple[str, object]]:
    """(id, input) pairs: PIL images and encoded bytes, >= 100 in all."""
    rng = np.random.default_rng(1234)
    cases: list[tuple[str, object]] = []
    sizes = [
        (1, 1), (2, 3), (3, 2), (1, 2000), (3000, 2), (4000, 3000), (224, 224), (225, 224),
        (223, 224), (224, 225), (448, 300), (300, 448), (1, 224), (224, 1), (3, 500), (500, 3),
        (1000, 1), (7, 7), (640, 480), (480, 640), (1920, 1080), (1023, 767),
    ]  # fmt: skip
    sizes += [tuple(int(v) for v in rng.integers(1, 900, 2)) for _ in range(40)]
    for w, h in sizes:
        cases.append((f"rgb-{w}x{h}", _rgb(rng, w, h)))
    modes = ["L", "LA", "P", "P+transparency", "RGBA", "CMYK", "I;16", "I", "1", "F", "YCbCr"]
    for mode in modes:
        for w, h in [
            (5, 3),
            (257, 131),
            (131, 700),
            tuple(int(v) for v in rng.integers(1, 600, 2)),
        ]:
            cases.append((f"{mode}-{w}x{h}", _in_mode(rng, mode, w, h)))
    # Encoded files, decoded by the runtime from bytes.
    for fmt, mode, (w, h) in [
        ("PNG", "RGB", (321, 123)), ("PNG", "L", (200, 900)), ("PNG", "LA", (90, 91)),
        ("PNG", "RGBA", (640, 427)), ("PNG", "P+transparency", (33, 300)), ("PNG", "I;16", (250, 250)),
        ("PNG", "1", (301, 299)), ("JPEG", "RGB", (800, 600)), ("JPEG", "L", (123, 456)),
        ("JPEG", "CMYK", (230, 260)), ("TIFF", "F", (64, 250)), ("GIF", "P", (120, 80)),
        ("BMP", "RGB", (99, 1000)), ("WEBP", "RGB", (256, 257)),
    ]:  # fmt: skip
        im = _in_mode(rng, mode, w, h)
        cases.append((f"{fmt}-{mode}-{w}x{h}", _encode(im, fmt)))
    return cases


CASES = _cases()


def _case_params() -> list[object]:
    """CASES as pytest params; those that resize to over 20 Mpx (a 1 x 2000 image becomes
    224 x 448,000) take seconds in the reference and are marked slow."""
    params = []
    for i, (name, item) in enumerate(CASES):
        big = False
        if isinstance(item, Image.Image):
            height, width = resize_output_size(item.height, item.width, 224)
            big = height * width > 20_000_000
        params.append(pytest.param(i, id=name, marks=[pytest.mark.slow] if big else []))
    return params


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP"])
def test_lossless_files_equal_the_image_they_hold(fmt: str) -> None:
    # Decoding from bytes must not change a pixel: a lossless file of an image and the
    # image itself give the same pixel values, bit for bit.
    im = _rgb(np.random.default_rng(3), 301, 187)
    from_bytes = preprocess(decode_image(_encode(im, fmt)), PRE)
    assert np.array_equal(from_bytes, preprocess(decode_image(im), PRE))


@pytest.mark.parametrize("case", _case_params())
def test_matches_clip_image_processor(processor, case: int) -> None:
    _, item = CASES[case]
    im = Image.open(io.BytesIO(item)) if isinstance(item, bytes) else item
    ref = reference(processor, im)
    got = preprocess(decode_image(item), PRE)
    assert got.dtype == np.float32 and got.shape == (3, 224, 224)
    assert np.abs(got - ref).max() <= 1e-6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_by_default(processor, orientation: int) -> None:
    im = _rgb(np.random.default_rng(orientation), 400, 250)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(im, "JPEG", exif=exif.tobytes(), quality=95)
    stored = Image.open(io.BytesIO(data))
    # Default: oriented as a photo viewer shows it; equals transformers on the
    # transposed image.
    upright = decode_image(data)
    want = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert upright.size == want.size
    if orientation in (5, 6, 7, 8):
        assert upright.size == (stored.height, stored.width)
    assert np.abs(preprocess(upright, PRE) - reference(processor, want)).max() <= 1e-6
    # exif_transpose=False: the stored pixels, as transformers feeds them.
    raw = decode_image(data, options=DecodeOptions(exif_transpose=False))
    assert raw.size == stored.size
    assert np.abs(preprocess(raw, PRE) - reference(processor, stored)).max() <= 1e-6


def test_exif_applies_to_pil_inputs_too() -> None:
    im = _rgb(np.random.default_rng(0), 300, 100)
    exif = Image.Exif()
    exif[0x0112] = 6
    opened = Image.open(io.BytesIO(_encode(im, "JPEG", exif=exif.tobytes())))
    assert decode_image(opened).size == (100, 300)


def test_arrays_equal_their_pil_image(processor) -> None:
    arr = np.asarray(_rgb(np.random.default_rng(5), 333, 222))
    assert np.array_equal(
        preprocess(decode_image(arr), PRE), reference(processor, Image.fromarray(arr))
    )
    gray = arr[..., 0].copy()
    assert decode_image(gray).mode == "RGB"


def test_crop_larger_than_image_pads_like_transformers() -> None:
    from transformers import CLIPImageProcessor

    pre = Preprocessing(**{**PRE.__dict__, "do_resize": False})
    proc = CLIPImageProcessor(do_resize=False, crop_size={"height": 224, "width": 224})
    for w, h in [(100, 50), (300, 60), (31, 400), (224, 223)]:
        im = _rgb(np.random.default_rng(w), w, h)
        assert np.abs(preprocess(im, pre) - reference(proc, im)).max() <= 1e-6


def test_resize_size_truncates_the_long_edge() -> None:
    assert resize_output_size(480, 640, 224) == (224, int(224 * 640 / 480))  # 298.67 -> 298
    assert resize_output_size(2000, 1, 224) == (448000, 224)
    assert resize_output_size(1, 1, 224) == (224, 224)


# -- decoding errors ----------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    # A PNG that declares a huge size in IHDR: PIL's size check must refuse it before
    # any pixel is allocated.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [20_000, 10_000])  # 400 Mpx (PIL error), 100 Mpx (PIL warning)
def test_decompression_bomb_is_an_input_error(side: int) -> None:
    with pytest.raises(InputError, match=r"image 3 .*(decompression bomb|exceeds the limit)"):
        decode_image(_png_header_only(side, side), 3)


def test_max_image_pixels_is_ours_to_set(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    _rgb(np.random.default_rng(0), 20, 20).save(path)
    with pytest.raises(InputError, match=r"small.png.*400 pixels exceeds the limit of 399"):
        decode_image(path, 0, DecodeOptions(max_image_pixels=399))
    assert decode_image(path, 0, DecodeOptions(max_image_pixels=400)).size == (20, 20)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # the process-wide PIL setting is untouched


def test_bad_inputs_name_the_item(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image at all" * 10)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(_encode(_rgb(np.random.default_rng(0), 300, 300), "PNG")[:2000])
    cases = [
        (empty, r"image 7 \('.*empty.jpg'\): file is empty"),
        (garbage, r"image 7 \('.*garbage.png'\): not an image"),
        (truncated, r"image 7 \('.*truncated.png'\): cannot decode"),
        (tmp_path / "missing.jpg", r"image 7 \('.*missing.jpg'\): no such file"),
        (tmp_path, r"image 7 .*is a directory"),
        (b"", r"image 7 \(bytes\): empty bytes"),
        (b"\x00" * 100, r"image 7 \(bytes\): not an image"),
        (io.BytesIO(b"junk"), r"image 7 \(BytesIO\): not an image"),
        (np.zeros((4, 4, 3), np.float32), r"image 7 \(ndarray .*float32\).*uint8"),
        (np.zeros((0, 4, 3), np.uint8), r"image 7 .*zero size"),
        (42, r"image 7 \(int\): unsupported input type int"),
        ("", r"image 7 .*empty path"),
    ]
    for item, pattern in cases:
        with pytest.raises(InputError, match=pattern):
            decode_image(item, 7)


def test_file_objects_and_paths(tmp_path: Path) -> None:
    im = _rgb(np.random.default_rng(0), 50, 40)
    path = tmp_path / "a.png"
    im.save(path)
    with open(path, "rb") as f:
        from_file = decode_image(f)
    for got in (
        from_file,
        decode_image(str(path)),
        decode_image(path),
        decode_image(path.read_bytes()),
    ):
        assert np.array_equal(np.asarray(got), np.asarray(im))
