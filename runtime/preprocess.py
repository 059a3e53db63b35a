"""Image decoding and CLIP preprocessing with PIL and numpy, equal to transformers'
CLIPImageProcessor (the PIL path, use_fast=False) to within float32 rounding.

The pipeline, in CLIPImageProcessor's order:

1. decode (paths, bytes, binary file objects, PIL images, HxWx3 uint8 arrays);
2. EXIF orientation: applied by default (``ImageOps.exif_transpose``), because that is
   what a user expects of a photo. transformers does *not* apply it; pass
   ``exif_transpose=False`` to ``cliprt.load`` to feed the stored pixels as transformers
   does;
3. ``convert("RGB")`` for any other mode (L, LA, P, RGBA, CMYK, I;16, 1, F...), exactly
   the call transformers' ``convert_to_rgb`` makes: alpha is dropped, not composited;
4. resize the shortest edge to ``resize_shortest_edge`` with the long edge truncated by
   ``int()`` (transformers' ``get_resize_output_image_size``), PIL BICUBIC;
5. center crop at ``(H - crop) // 2`` (floor, as transformers; OpenAI's own code rounds),
   zero-padding an image smaller than the crop;
6. rescale in float64 (``x * 1/255``) then cast to float32; normalize ``(x - mean) / std``
   in float32; HWC -> CHW.

Decompression bombs: an image of more than ``max_image_pixels`` pixels (default
``DEFAULT_MAX_IMAGE_PIXELS``, PIL's own 89,478,485) is refused with an InputError
before it is decoded. Pillow applies its own guard (``PIL.Image.MAX_IMAGE_PIXELS``,
which cliprt never changes) first, so ``cliprt.load`` refuses a larger
``max_image_pixels`` rather than promise what Pillow would refuse.

Paths: only regular files are opened, and without blocking: a FIFO, device or folder is
an InputError naming the item, never a read that waits forever. Whatever Pillow raises
while decoding an item (its plugins raise OSError, ValueError, NotImplementedError,
struct.error...) becomes an InputError naming the item.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cliprt.errors import InputError
from cliprt.manifest import Preprocessing

ImageInput = (
    str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray
)

# PIL's default limit (about 0.25 GiB of 24-bit pixels); ours is explicit so that the
# process-wide Image.MAX_IMAGE_PIXELS is never touched.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485

# An extreme aspect ratio (1 x 2000) resized to a 224 shortest edge is a 224 x 448,000
# image. Up to this many pixels (about 0.5 GiB as PIL stores RGB) the full resize runs,
# bit-exact with transformers; beyond it (aspect ratios past about 1:2700) only the
# crop's window is resampled (PIL's `box`), which is close but not bit-exact, so that a
# 1 x 100,000 strip cannot allocate tens of GiB.
MAX_EXACT_RESIZE_PIXELS = 1 << 27


@dataclass(frozen=True)
class DecodeOptions:
    """How inputs are decoded before preprocessing.

    Attributes:
        exif_transpose: apply the EXIF orientation tag (transformers does not).
        max_image_pixels: refuse images with more pixels than this (decompression bombs).
    """

    exif_transpose: bool = True
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


def describe(item: Any) -> str:
    """A short name of an input for error messages: its path, or its type."""
    if isinstance(item, (str, os.PathLike)):
        return repr(os.fspath(item))
    if isinstance(item, np.ndarray):
        return f"ndarray shape={item.shape} dtype={item.dtype}"
    name = getattr(item, "name", None)
    if isinstance(name, str):
        return f"{type(item).__name__} {name!r}"
    return type(item).__name__


def _check_pixels(im: Image.Image, where: str, limit: int) -> None:
    pixels = im.width * im.height
    if pixels > limit:
        raise InputError(
            f"{where}: {im.width}x{im.height} = {pixels} pixels exceeds the limit of {limit} "
            "(a decompression bomb guard); downscale it or raise max_image_pixels in cliprt.load()"
        )
    if pixels == 0:
        raise InputError(f"{where}: image has zero size ({im.width}x{im.height})")


def pil_pixel_limit() -> int | None:
    """The most pixels Pillow itself decodes: it raises DecompressionBombError beyond
    twice PIL.Image.MAX_IMAGE_PIXELS and warns beyond it (None: no limit)."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else int(limit)


def _open_regular(path: Path, where: str) -> io.BufferedReader:
    """Opens a path for reading only if it is a regular file, without blocking on a FIFO.

    Raises:
        InputError: missing, unreadable, or not a regular file (folder, FIFO, device,
            socket), naming the item.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as exc:
        raise InputError(f"{where}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{where}: is a directory, not an image file") from exc
    except OSError as exc:
        raise InputError(f"{where}: cannot open ({exc.strerror or exc})") from exc
    try:
        st = os.fstat(fd)
        mode = st.st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a directory"
                if stat.S_ISDIR(mode)
                else "a FIFO (named pipe)"
                if stat.S_ISFIFO(mode)
                else "a device"
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket"
                if stat.S_ISSOCK(mode)
                else "not a regular file"
            )
            raise InputError(f"{where}: is {kind}, not an image file; pass a regular file")
        if st.st_size == 0:
            raise InputError(f"{where}: file is empty (0 bytes)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open(source: Any, where: str, options: DecodeOptions) -> Image.Image:
    try:
        with Image.open(source) as im:
            _check_pixels(im, where, options.max_image_pixels)
            im.load()
            return _orient_rgb(im, options)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (PIL.Image.MAX_IMAGE_PIXELS), not cliprt's max_image_pixels:
        # load() keeps max_image_pixels within it, so raising that would not help.
        raise InputError(
            f"{where}: refused as a decompression bomb by Pillow's own guard ({exc}); if the "
            "image is genuine, raise PIL.Image.MAX_IMAGE_PIXELS (process-wide) and "
            "max_image_pixels in cliprt.load()"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InputError(f"{where}: not an image PIL can identify (empty or corrupt?)") from exc
    except FileNotFoundError as exc:
        raise InputError(f"{where}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{where}: is a directory, not an image file") from exc
    except MemoryError as exc:
        raise InputError(f"{where}: too large to decode in the memory available") from exc
    except Exception as exc:
        # PIL reports truncated, corrupt or unsupported data as OSError, SyntaxError,
        # ValueError, NotImplementedError (e.g. DDS variants), struct.error...: for an
        # untrusted file every one of them means "cannot decode this item".
        raise InputError(
            f"{where}: cannot decode image ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def _orient_rgb(im: Image.Image, options: DecodeOptions) -> Image.Image:
    if options.exif_transpose:
        im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return im


def decode_image(
    item: ImageInput, index: int = 0, options: DecodeOptions | None = None
) -> Image.Image:
    """Decodes one input into an RGB PIL image, oriented per `options`.

    Args:
        item: a path (str or os.PathLike), encoded bytes, a binary file object, a PIL
            image, or an HxWx3 (or HxW) uint8 array in RGB order.
        index: the item's position in the caller's list, for error messages.
        options: EXIF and size policy.

    Raises:
        InputError: unreadable, corrupt, empty, too large, or of an unsupported type;
            the message names the item by index and path or type.
    """
    options = options or DecodeOptions()
    where = f"image {index} ({describe(item)})"
    if isinstance(item, Image.Image):
        _check_pixels(item, where, options.max_image_pixels)
        try:
            return _orient_rgb(item, options)
        except (OSError, ValueError) as exc:
            raise InputError(f"{where}: cannot convert to RGB ({exc})") from exc
    if isinstance(item, (str, os.PathLike)):
        if isinstance(item, str) and not item:
            raise InputError(f"{where}: empty path")
        raw = os.fspath(item)
        if (b"\0" if isinstance(raw, bytes) else "\0") in raw:
            raise InputError(f"{where}: a path cannot contain a NUL character")
        with _open_regular(Path(item), where) as f:
            return _open(f, where, options)
    if isinstance(item, (bytes, bytearray, memoryview)):
        if len(item) == 0:
            raise InputError(f"{where}: empty bytes")
        return _open(io.BytesIO(bytes(item)), where, options)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or not (
            item.ndim == 2 or (item.ndim == 3 and item.shape[2] in (3, 4))
        ):
            raise InputError(
                f"{where}: arrays must be HxWx3 (RGB), HxWx4 (RGBA) or HxW uint8; convert it first"
            )
        if item.size == 0:
            raise InputError(f"{where}: image has zero size {item.shape}")
        im = Image.fromarray(np.ascontiguousarray(item))
        _check_pixels(im, where, options.max_image_pixels)
        return im if im.mode == "RGB" else im.convert("RGB")
    if hasattr(item, "read"):
        return _open(item, where, options)
    raise InputError(
        f"{where}: unsupported input type {type(item).__name__}; pass a path, bytes, a binary "
        "file object, a PIL image or an HxWx3 uint8 array"
    )


def resize_output_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    """(height, width) after resizing the shortest edge to `shortest_edge`, the long edge
    truncated with int() as transformers' get_resize_output_image_size does."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest_edge, int(shortest_edge * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    return new_h, new_w


def _center_crop_box(
    height: int, width: int, crop_h: int, crop_w: int, rounding: str = "floor"
) -> tuple[int, int]:
    if rounding == "round":
        # torchvision's center_crop (OpenCLIP): Python's round(), half to even.
        return round((height - crop_h) / 2.0), round((width - crop_w) / 2.0)
    return (height - crop_h) // 2, (width - crop_w) // 2


def _resize_and_crop(im: Image.Image, pre: Preprocessing) -> np.ndarray:
    crop_h, crop_w = pre.crop_height, pre.crop_width
    rounding = pre.crop_rounding
    if not pre.do_resize:
        arr = np.asarray(im)
        return _center_crop(arr, crop_h, crop_w, rounding) if pre.do_center_crop else arr
    resample = Image.Resampling(pre.resample)
    if pre.resize_mode == "squash":
        # SigLIP: straight to the tower's size whatever the aspect ratio, no crop.
        return np.asarray(im.resize((crop_w, crop_h), resample=resample, reducing_gap=None))
    new_h, new_w = resize_output_size(im.height, im.width, pre.resize_shortest_edge)
    if (
        pre.do_center_crop
        and new_h * new_w > MAX_EXACT_RESIZE_PIXELS
        and new_h >= crop_h
        and new_w >= crop_w
    ):
        # Resample only the crop's window (see MAX_EXACT_RESIZE_PIXELS).
        top, left = _center_crop_box(new_h, new_w, crop_h, crop_w, rounding)
        sy, sx = im.height / new_h, im.width / new_w
        box = (left * sx, top * sy, (left + crop_w) * sx, (top + crop_h) * sy)
        return np.asarray(im.resize((crop_w, crop_h), resample=resample, box=box))
    arr = np.asarray(im.resize((new_w, new_h), resample=resample, reducing_gap=None))
    return _center_crop(arr, crop_h, crop_w, rounding) if pre.do_center_crop else arr


def _center_crop(arr: np.ndarray, crop_h: int, crop_w: int, rounding: str = "floor") -> np.ndarray:
    # transformers' center_crop: floor offsets; an image smaller than the crop is
    # zero-padded around its center (ceil of half the padding before it). After a
    # shortest-edge resize to the crop size the image is never smaller than the crop.
    h, w = arr.shape[:2]
    top, left = _center_crop_box(h, w, crop_h, crop_w, rounding)
    if top >= 0 and left >= 0:
        return arr[top : top + crop_h, left : left + crop_w]
    new_h, new_w = max(crop_h, h), max(crop_w, w)
    padded = np.zeros((new_h, new_w, *arr.shape[2:]), dtype=arr.dtype)
    top_pad, left_pad = -(-(new_h - h) // 2), -(-(new_w - w) // 2)
    padded[top_pad : top_pad + h, left_pad : left_pad + w] = arr
    top, left = top + top_pad, left + left_pad
    return padded[max(0, top) : min(new_h, top + crop_h), max(0, left) : min(new_w, left + crop_w)]


def preprocess(im: Image.Image, pre: Preprocessing) -> np.ndarray:
    """One RGB PIL image -> float32 (3, H, W) pixel values, as CLIPImageProcessor makes
    them (see the module docstring for the steps)."""
    if im.mode != "RGB":
        im = im.convert("RGB")
    arr = _resize_and_crop(im, pre)
    if pre.do_rescale and pre.rescale_mode == "divide":
        x = arr.astype(np.float32) / np.float32(1.0 / pre.rescale_factor)  # ToTensor
    elif pre.do_rescale:
        x = (arr.astype(np.float64) * pre.rescale_factor).astype(np.float32)
    else:
        x = arr.astype(np.float32)
    if pre.do_normalize:
        mean = np.asarray(pre.image_mean, dtype=np.float32)
        std = np.asarray(pre.image_std, dtype=np.float32)
        x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def load_and_preprocess(
    item: ImageInput, index: int, pre: Preprocessing, options: DecodeOptions
) -> np.ndarray:
    """decode_image then preprocess: one input -> float32 (3, H, W)."""
    return preprocess(decode_image(item, index, options), pre)
