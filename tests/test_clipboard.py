"""The clipboard image: real X11 CLIPBOARD selections held by xclip on Xvfb; Windows through a fake grab."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from xvfb import XvfbDisplay

from qwen_tray import clipboard


def _offer(display: XvfbDisplay, data: bytes, target: str) -> None:
    """Put ``data`` on the CLIPBOARD as ``target``; xclip forks and keeps serving it until the server stops."""
    assert display.selection_owner("CLIPBOARD") is None  # each test starts with an empty clipboard
    subprocess.run(
        ["xclip", "-selection", "clipboard", "-t", target, "-i"],
        input=data, env=display.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=30,
    )  # fmt: skip
    display.wait_for_selection_owner("CLIPBOARD")  # xclip's child takes the selection after the parent exits


def _picture(mode: str = "RGB") -> Image.Image:
    img = Image.new(mode, (37, 21), (200, 10, 10) + ((255,) if mode == "RGBA" else ()))
    img.putpixel((36, 20), (1, 2, 3) + ((255,) if mode == "RGBA" else ()))
    return img


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_png_on_the_clipboard_comes_back(xvfb_display: XvfbDisplay) -> None:
    _offer(xvfb_display, _encoded(_picture("RGBA"), "PNG"), "image/png")
    img = clipboard.clipboard_image()
    assert img is not None and img.mode == "RGB" and img.size == (37, 21)
    assert img.getpixel((0, 0)) == (200, 10, 10) and img.getpixel((36, 20)) == (1, 2, 3)


def test_bmp_only_clipboard(xvfb_display: XvfbDisplay) -> None:
    _offer(xvfb_display, _encoded(_picture(), "BMP"), "image/bmp")
    result = clipboard.read_clipboard()
    assert result.image is not None and result.image.getpixel((36, 20)) == (1, 2, 3)


def test_empty_clipboard(xvfb_display: XvfbDisplay) -> None:
    result = clipboard.read_clipboard()
    assert result.image is None and result.reason == "the clipboard is empty"
    assert clipboard.clipboard_image() is None


def test_text_is_not_an_image(xvfb_display: XvfbDisplay) -> None:
    _offer(xvfb_display, b"just some words", "UTF8_STRING")
    result = clipboard.read_clipboard()
    assert result.image is None and "no image" in result.reason


def test_broken_image_data_is_a_reason_not_a_crash(xvfb_display: XvfbDisplay) -> None:
    _offer(xvfb_display, b"\x89PNG\r\n\x1a\n not really", "image/png")
    result = clipboard.read_clipboard()
    assert result.image is None and "clipboard image" in result.reason


def test_no_display_and_no_xclip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    assert clipboard.read_clipboard().reason == "there is no X display to read the clipboard from"
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "needs xclip" in clipboard.read_clipboard().reason


def test_windows_grab_variants(tmp_path: Path) -> None:
    img = clipboard.read_windows(lambda: _picture("RGBA")).image
    assert img is not None and img.mode == "RGB" and img.getpixel((36, 20)) == (1, 2, 3)
    assert "no image" in clipboard.read_windows(lambda: None).reason
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    png_file = tmp_path / "shot.png"
    _picture().save(png_file)
    img = clipboard.read_windows(lambda: [str(text_file), str(png_file)]).image  # files copied in Explorer
    assert img is not None and img.size == (37, 21)
    assert clipboard.read_windows(lambda: [str(text_file)]).reason == "the copied files are not images"

    def locked() -> None:
        raise OSError("OpenClipboard failed")

    assert "could not be opened" in clipboard.read_windows(locked).reason
