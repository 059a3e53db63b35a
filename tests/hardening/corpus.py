"""The bad-input corpus, generated in the test session: real files of every kind a user
or an attacker can hand to cliprt as an image path.

Each case says what must happen: "ok" (a real image Pillow decodes: cliprt must embed
it), "error" (cliprt must refuse it with an InputError naming the item) or "either" (a
valid file whose support depends on the Pillow build: embedding or a typed refusal).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    """One corpus file: its path, what must happen, and the kind it stands for."""

    path: Path
    expect: str  # "ok" | "error" | "either"
    kind: str


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header (CRC-correct) declares width x height RGB pixels, with one
    tiny IDAT: the decompression bomb shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def bmp_declaring(width: int, height: int) -> bytes:
    """A 24-bit BMP header declaring width x height, with a few bytes of pixels."""
    pixels = b"\0" * 64
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    header = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return header + info + pixels


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF89a whose logical screen and single frame declare width x height."""
    screen = struct.pack("<6sHHBBB", b"GIF89a", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def dds(fourcc: bytes = b"ABCD", flags: int = 0x4) -> bytes:
    """A DDS texture header with a pixel format Pillow does not implement."""
    pf = struct.pack("<II4sIIIII", 32, flags, fourcc, 0, 0, 0, 0, 0)
    hdr = struct.pack("<IIIIIII", 124, 0x1007, 4, 4, 0, 0, 0) + b"\0" * 44 + pf
    return b"DDS " + hdr + struct.pack("<IIIII", 0x1000, 0, 0, 0, 0) + b"\0" * 64


def _save(im: Image.Image, path: Path, **kw: object) -> Path:
    im.save(path, **kw)
    return path


def build_corpus(root: Path) -> list[Case]:
    """Writes the corpus under `root` and returns its cases, in a fixed order."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "RGB")
    cases: list[Case] = []

    def ok(name: str, kind: str, im: Image.Image, **kw: object) -> None:
        cases.append(Case(_save(im, root / name, **kw), "ok", kind))

    def either(name: str, kind: str, im: Image.Image, **kw: object) -> None:
        try:
            path = _save(im, root / name, **kw)
        except (OSError, ValueError, KeyError):
            return  # this Pillow cannot write it: nothing to test
        cases.append(Case(path, "either", kind))

    def raw(name: str, kind: str, data: bytes, expect: str = "error") -> None:
        path = root / name
        path.write_bytes(data)
        cases.append(Case(path, expect, kind))

    # Real images in exotic modes and formats: must embed.
    ok("rgb.png", "format", rgb)
    ok("rgb.jpg", "format", rgb, quality=90)
    ok("progressive.jpg", "format", rgb, progressive=True)
    ok("rgb.bmp", "format", rgb)
    ok("rgb.webp", "format", rgb)
    ok("rgb.tga", "format", rgb)
    ok("rgb.ppm", "format", rgb)
    ok("rgb.tiff", "format", rgb)
    ok("rgb.ico", "format", rgb)
    ok("mode-1.png", "exotic-mode", rgb.convert("1"))
    ok("mode-L.png", "exotic-mode", rgb.convert("L"))
    ok("mode-LA.png", "exotic-mode", rgb.convert("LA"))
    ok("mode-P.png", "exotic-mode", rgb.convert("P"))
    ok("mode-P-transparency.png", "exotic-mode", rgb.convert("P"), transparency=0)
    ok("mode-RGBA.png", "exotic-mode", rgb.convert("RGBA"))
    ok("mode-CMYK.jpg", "exotic-mode", rgb.convert("CMYK"))
    ok("mode-I16.png", "exotic-mode", Image.fromarray(np.full((32, 32), 40000, np.uint16)))
    ok("mode-I.tiff", "exotic-mode", rgb.convert("I"))
    ok("mode-F.tiff", "exotic-mode", rgb.convert("F"))
    either("mode-LAB.tiff", "exotic-mode", rgb.convert("LAB"))
    either("mode-YCbCr.jpg", "exotic-mode", rgb.convert("YCbCr"))
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    ok("animated.gif", "exotic-mode", frames[0], save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    ok("exif-rotated.jpg", "exotic-mode", rgb, exif=exif)
    ok("one-pixel.png", "dimension", Image.new("RGB", (1, 1), "red"))
    ok("strip-1x3000.png", "dimension", Image.new("RGB", (1, 3000), "blue"))

    # Damaged, empty and wrong-format files: must be refused, naming the item.
    png = io.BytesIO()
    rgb.save(png, "PNG")
    jpg = io.BytesIO()
    rgb.save(jpg, "JPEG")
    raw("zero-byte.jpg", "zero-byte", b"")
    raw("truncated.png", "truncated", png.getvalue()[: len(png.getvalue()) // 2])
    raw("truncated-header.png", "truncated", png.getvalue()[:20])
    raw("truncated.jpg", "truncated", jpg.getvalue()[: len(jpg.getvalue()) // 3])
    raw("garbage.jpg", "wrong-format", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    raw("text.png", "wrong-format", b"this is not an image\n" * 20)
    npy = io.BytesIO()
    np.save(npy, np.zeros((8, 8), np.float32))
    raw("array.png", "wrong-format", npy.getvalue())
    raw("dds-unknown-fourcc.dds", "wrong-format", dds())
    raw("dds-dx10.dds", "wrong-format", dds(fourcc=b"DX10"))
    raw("dds-bad-flags.dds", "wrong-format", dds(flags=0x200))

    # Headers declaring huge dimensions: refused before decoding (bomb guard).
    raw("huge-declared.png", "huge-dimension", png_declaring(100_000, 100_000))
    raw("huge-declared.bmp", "huge-dimension", bmp_declaring(60_000, 60_000))
    raw("huge-declared.gif", "huge-dimension", gif_declaring(65_535, 65_535))
    raw("zero-width.png", "huge-dimension", png_declaring(0, 10))

    # Not regular files: refused without being read (a FIFO read would block forever).
    (root / "folder.jpg").mkdir()
    cases.append(Case(root / "folder.jpg", "error", "non-regular"))
    os.mkfifo(root / "fifo.png")
    cases.append(Case(root / "fifo.png", "error", "non-regular"))
    os.symlink("fifo.png", root / "link-to-fifo.jpg")
    cases.append(Case(root / "link-to-fifo.jpg", "error", "symlink"))
    os.symlink(os.devnull, root / "link-to-devnull.png")
    cases.append(Case(root / "link-to-devnull.png", "error", "symlink"))
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", root / "link-to-devzero.jpg")
        cases.append(Case(root / "link-to-devzero.jpg", "error", "symlink"))
    os.symlink("nowhere.png", root / "dangling-link.png")
    cases.append(Case(root / "dangling-link.png", "error", "symlink"))
    os.symlink("loop-link.jpg", root / "loop-link.jpg")
    cases.append(Case(root / "loop-link.jpg", "error", "symlink"))
    os.symlink("rgb.png", root / "link-to-image.png")
    cases.append(Case(root / "link-to-image.png", "ok", "symlink"))
    cases.append(Case(root / "missing.jpg", "error", "missing"))
    return cases
