"""Decode images from files, encoded bytes or raw pixels, with limits checked first.

Why here: the CLI, the IPC server and the popup all take images from outside;
one place decides what is a bad image (`bad_image`) and what is too big
(`too_large`) before a single pixel is decoded, so a decompression bomb costs
nothing and a request is rejected before it is accepted.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Literal

from PIL import Image

ENCODED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
RAW_MODES = {"RGB": 3, "BGRA": 4}
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_PIXELS = 8192 * 8192
# Qwen3-VL's image processor refuses an aspect ratio of 200:1 or more ("Absolute aspect ratio must be smaller
# than 200"), deep inside the engine after the request was accepted; checked here first instead.
MAX_ASPECT_RATIO = 200
SCALE_HINT = ("scale it down first (the model sees about 1 megapixel of it anyway; a screenshot's size is fine), "
              "or raise image.max_pixels in the config")


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
        with warnings.catch_warnings():  # our own max_pixels check below speaks for Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ENCODED_FORMATS)
    except Image.DecompressionBombError:
        raise ImageRejected("too_large", f"{what} has too many pixels to open safely: {SCALE_HINT}") from None
    except (OSError, ValueError, SyntaxError):
        raise ImageRejected(
            "bad_image", f"{what} is not a PNG, JPEG, WebP or BMP image (or raw pixels with a 'raw' description)"
        ) from None
    check_size(img.size[0], img.size[1], max_pixels, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError:
        raise ImageRejected("too_large", f"{what} has too many pixels to open safely: {SCALE_HINT}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("bad_image", f"{what} is damaged or truncated ({exc})") from None
    return img.convert("RGB") if img.mode != "RGB" else img


def check_size(w: int, h: int, max_pixels: int, what: str) -> None:
    """Refuse, before decoding, what the engine cannot take: no pixels, too many, or too long and thin."""
    if w < 1 or h < 1:
        raise ImageRejected("bad_image", f"{what} has no pixels")
    if w * h > max_pixels:
        raise ImageRejected(
            "too_large", f"{what} is {w}x{h} ({w * h / 1e6:.1f} megapixels), over the limit of "
                         f"{max_pixels / 1e6:.1f} megapixels (image.max_pixels): {SCALE_HINT}")
    check_aspect(w, h, what)


def check_aspect(w: int, h: int, what: str, fix: str = "crop it into shorter pieces or pad the short side") -> None:
    """Refuse an image too long and thin for the model (200:1 or more); `fix` says what the person can do."""
    if max(w, h) >= MAX_ASPECT_RATIO * min(w, h):
        raise ImageRejected(
            "bad_image", f"{what} is {w}x{h}: one side is {max(w, h) // min(w, h)} times the other, and the model "
                         f"takes images up to {MAX_ASPECT_RATIO - 1}:1; {fix}")


def raw_image(data: bytes, width: int, height: int, mode: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
              max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image") -> Image.Image:
    """Raw RGB or BGRA pixels (a screen grab, no encoding cost) -> an RGB image."""
    if mode not in RAW_MODES:
        raise ImageRejected("bad_image", f"{what}: raw mode must be RGB or BGRA, not {mode!r}")
    if width < 1 or height < 1:
        raise ImageRejected("bad_image", f"{what}: raw width and height must be at least 1")
    check_size(width, height, max_pixels, what)
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
