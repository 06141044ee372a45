"""qwen_tray.images: what the engine cannot take is refused from the header, with a sentence naming the image."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import pytest
from PIL import Image

from qwen_tray.images import ImageRejected, decode_image, raw_image


def png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (5, 6, 7)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("w", "h"), [(20000, 50), (50, 20000), (400, 2)])
def test_aspect_ratio_of_200_or_more_is_refused_before_decoding(w: int, h: int) -> None:
    with pytest.raises(ImageRejected) as info:
        decode_image(png(w, h), what="strip.png")
    assert info.value.code == "bad_image"
    assert str(info.value).startswith(f"strip.png is {w}x{h}: one side is {max(w, h) // min(w, h)} times the other")
    with pytest.raises(ImageRejected, match="crop it"):
        raw_image(b"\0" * (w * h * 3), w, h, "RGB", what="grab")


def test_just_under_200_to_1_is_accepted() -> None:
    assert decode_image(png(199 * 4, 4)).size == (796, 4)


def png_header_only(w: int, h: int) -> bytes:
    """A valid PNG header claiming w x h pixels, with no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_pillow_bomb_warning_never_escapes() -> None:
    w, h = 10000, Image.MAX_IMAGE_PIXELS // 10000 + 10  # over Pillow's warning threshold, under its error one
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ImageRejected) as info:  # our limit raised above it: the header passes, decoding fails
            decode_image(png_header_only(w, h), max_pixels=2 * w * h, what="big.png")
        over = r"is 10000x8957 \(89\.6 megapixels\), over the limit of 89\.6 megapixels"
        with pytest.raises(ImageRejected, match=over):  # at our own limit: refused
            decode_image(png_header_only(w, h), max_pixels=w * h - 1, what="big.png")
    assert "damaged or truncated" in str(info.value)
    assert [w.category.__name__ for w in seen] == []
