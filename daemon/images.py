"""Decode images from files, encoded bytes or raw pixels, with limits checked first.

Why here: the CLI, the IPC server and the popup all take images from outside;
one place decides what is a bad image (`bad_image`) and what is too big
(`too_large`) before a single pixel is decoded, so a decompression bomb costs
nothing and a request is rejected before it is accepted.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

from PIL import Image

ENCODED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
RAW_MODES = {"RGB": 3, "BGRA": 4}
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_PIXELS = 8192 * 8192


class ImageRejected(ValueError):
    """An image we will not use; `code` is the protocol's rejection code."""

    def __init__(self, code: Literal["bad_image", "too_large"], message: str) -> None:
        super().__init__(message)
        self.code = code


def decode_image(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
                 what: str = "image") -> Image.Image:
    """PNG, JPEG, WebP or BMP bytes -> a fully loaded RGB image."""
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"{what} is {len(data)} bytes; the limit is {max_bytes} bytes")
    if not data:
        raise ImageRejected("bad_image", f"{what} is empty")
    try:
        img = Image.open(io.BytesIO(data), formats=ENCODED_FORMATS)
    except Image.DecompressionBombError:
        raise ImageRejected("too_large", f"{what} has too many pixels") from None
    except (OSError, ValueError, SyntaxError):
        raise ImageRejected(
            "bad_image", f"{what} is not a PNG, JPEG, WebP or BMP image (or raw pixels with a 'raw' description)"
        ) from None
    w, h = img.size
    if w < 1 or h < 1:
        raise ImageRejected("bad_image", f"{what} has no pixels")
    if w * h > max_pixels:
        raise ImageRejected("too_large", f"{what} is {w}x{h} = {w * h} pixels; the limit is {max_pixels}")
    try:
        img.load()
    except Image.DecompressionBombError:
        raise ImageRejected("too_large", f"{what} has too many pixels") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("bad_image", f"{what} is damaged or truncated ({exc})") from None
    return img.convert("RGB") if img.mode != "RGB" else img


def raw_image(data: bytes, width: int, height: int, mode: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
              max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image") -> Image.Image:
    """Raw RGB or BGRA pixels (a screen grab, no encoding cost) -> an RGB image."""
    if mode not in RAW_MODES:
        raise ImageRejected("bad_image", f"{what}: raw mode must be RGB or BGRA, not {mode!r}")
    if width < 1 or height < 1:
        raise ImageRejected("bad_image", f"{what}: raw width and height must be at least 1")
    if width * height > max_pixels:
        raise ImageRejected("too_large", f"{what} is {width}x{height} pixels; the limit is {max_pixels}")
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"{what} is {len(data)} bytes; the limit is {max_bytes} bytes")
    expected = width * height * RAW_MODES[mode]
    if len(data) != expected:
        raise ImageRejected(
            "bad_image", f"{what}: {width}x{height} {mode} needs exactly {expected} bytes, got {len(data)}"
        )
    if mode == "RGB":
        return Image.frombytes("RGB", (width, height), data)
    return Image.frombytes("RGB", (width, height), data, "raw", "BGRX")


def load_image_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read and decode an image file; errors name the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise ImageRejected("bad_image", f"no image file at {path}") from None
    if size > max_bytes:
        raise ImageRejected("too_large", f"{path} is {size} bytes; the limit is {max_bytes} bytes")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageRejected("bad_image", f"cannot read {path}: {exc.strerror}") from None
    return decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, what=str(path))
