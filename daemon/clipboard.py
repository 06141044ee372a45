"""The clipboard image, as a further thing to ask about (tray menu: "Ask about clipboard image").

Why these mechanisms: on Windows, Pillow's ``ImageGrab.grabclipboard()`` reads CF_DIB/PNG directly (and gives
file names when files were copied in Explorer: we open the first image among them). On X11 the clipboard is a
conversation with the owning program; ``xclip`` is the small, dependable way to hold it: ask for TARGETS, pick
an image type we decode, fetch it. Every "no image" case comes back as ``None`` with a reason a person can
read (empty clipboard, text only, xclip missing...), never an exception. Nothing is written to disk.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from qwen_tray.images import ImageRejected, decode_image, load_image_file

log = logging.getLogger(__name__)

# MIME types xclip may offer, best first; all decode with qwen_tray.images (PNG, JPEG, WebP, BMP).
IMAGE_TARGETS = ("image/png", "image/bmp", "image/x-bmp", "image/jpeg", "image/webp")
_XCLIP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClipboardRead:
    """The image, or None and why not."""

    image: Image.Image | None
    reason: str = ""


def _xclip(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["xclip", "-selection", "clipboard", *args], capture_output=True, timeout=_XCLIP_TIMEOUT, check=False
    )


def read_x11() -> ClipboardRead:
    """The X11 CLIPBOARD selection's image via xclip."""
    if shutil.which("xclip") is None:
        return ClipboardRead(None, "reading the clipboard needs xclip (Debian package: xclip)")
    try:
        listing = _xclip("-t", "TARGETS", "-o")
    except subprocess.TimeoutExpired:
        return ClipboardRead(None, "the program holding the clipboard did not answer")
    if listing.returncode != 0:
        err = listing.stderr.decode(errors="replace").strip()
        if "Can't open display" in err:
            return ClipboardRead(None, "there is no X display to read the clipboard from")
        return ClipboardRead(None, "the clipboard is empty")
    targets = listing.stdout.decode(errors="replace").split()
    chosen = next((t for t in IMAGE_TARGETS if t in targets), None)
    if chosen is None:
        return ClipboardRead(None, "the clipboard holds no image (copy an image or a screenshot first)")
    try:
        data = _xclip("-t", chosen, "-o")
    except subprocess.TimeoutExpired:
        return ClipboardRead(None, "the program holding the clipboard did not send the image")
    if data.returncode != 0:
        return ClipboardRead(None, f"the clipboard offered {chosen} but did not deliver it")
    try:
        return ClipboardRead(decode_image(data.stdout, what="the clipboard image"))
    except ImageRejected as exc:
        return ClipboardRead(None, str(exc))


def read_windows(grab: Callable[[], Any] | None = None) -> ClipboardRead:
    """The Windows clipboard's image via Pillow (``grab`` replaces ImageGrab.grabclipboard in tests)."""
    if grab is None:
        from PIL import ImageGrab

        grab = ImageGrab.grabclipboard
    try:
        content = grab()
    except OSError as exc:  # the clipboard is locked by another program for a moment
        return ClipboardRead(None, f"the clipboard could not be opened ({exc})")
    if content is None:
        return ClipboardRead(None, "the clipboard holds no image (copy an image or a screenshot first)")
    if isinstance(content, Image.Image):
        try:
            content.load()
        except OSError as exc:
            return ClipboardRead(None, f"the clipboard image is damaged ({exc})")
        return ClipboardRead(content.convert("RGB") if content.mode != "RGB" else content)
    if isinstance(content, list):  # files copied in Explorer: the first one that is an image
        for name in content:
            try:
                return ClipboardRead(load_image_file(Path(name)))
            except ImageRejected:
                continue
        return ClipboardRead(None, "the copied files are not images")
    return ClipboardRead(None, "the clipboard holds no image")


def read_clipboard() -> ClipboardRead:
    """The clipboard image on this platform, or None with the reason."""
    if sys.platform == "win32":
        return read_windows()
    if sys.platform == "darwin":
        from PIL import ImageGrab

        return read_windows(ImageGrab.grabclipboard)  # Pillow supports macOS the same way
    return read_x11()


def clipboard_image() -> Image.Image | None:
    """The clipboard's image as RGB, or None (the reason goes to the log; use read_clipboard to show it)."""
    result = read_clipboard()
    if result.image is None:
        log.info("no clipboard image: %s", result.reason)
    return result.image
