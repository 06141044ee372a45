"""Screen capture with mss: the monitor under the cursor, the whole virtual desktop, or a region.

Why these choices:
- One mss instance per capture (opened and closed here): mss objects are not thread-safe and hold a display
  connection; captures are rare (a hotkey press), so opening one costs nothing that matters and the hotkey,
  Tk and tray threads can all capture without sharing state.
- Coordinates are screen pixels of the virtual desktop, whose origin can be negative on Windows (a monitor left
  of or above the primary). DPI awareness must be set before the first capture (``qwen_tray.dpi``), or Windows
  hands a scaled, blurry image and scaled coordinates.
- The cursor position comes through a small seam (X11 ``query_pointer`` / Windows ``GetCursorPos``) so the app
  and the tests can pass a position explicitly.
- Captures stay in memory (privacy): nothing here writes the screen to disk.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image


class CaptureError(RuntimeError):
    """The screen could not be captured (no display, empty region...); the message says why."""


@dataclass(frozen=True)
class Rect:
    """A rectangle in virtual-desktop pixels (left/top may be negative)."""

    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    def contains(self, x: int, y: int) -> bool:
        return self.left <= x < self.right and self.top <= y < self.bottom

    def intersect(self, other: Rect) -> Rect | None:
        left, top = max(self.left, other.left), max(self.top, other.top)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        if right <= left or bottom <= top:
            return None
        return Rect(left, top, right - left, bottom - top)

    def distance2(self, x: int, y: int) -> int:
        """Squared distance from a point to this rectangle (0 inside): picks the nearest monitor from a gap."""
        dx = max(self.left - x, 0, x - (self.right - 1))
        dy = max(self.top - y, 0, y - (self.bottom - 1))
        return dx * dx + dy * dy

    @classmethod
    def from_corners(cls, x0: int, y0: int, x1: int, y1: int) -> Rect:
        """The rectangle spanned by two corners in any order (as a mouse drag gives them), both pixels included."""
        left, right = sorted((x0, x1))
        top, bottom = sorted((y0, y1))
        return cls(left, top, right - left + 1, bottom - top + 1)

    @classmethod
    def from_mss(cls, mon: dict[str, Any]) -> Rect:
        return cls(int(mon["left"]), int(mon["top"]), int(mon["width"]), int(mon["height"]))

    def as_mss(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Capture:
    """A captured image (PIL RGB, in memory), where it came from, and the monitor it belongs to."""

    image: Image.Image
    rect: Rect  # the captured area, in screen pixels; image.size == (rect.width, rect.height)
    monitor: Rect  # the monitor holding the area's centre (the whole desktop for a desktop capture)
    monitors: tuple[Rect, ...] = ()  # every monitor at capture time, so a later crop knows its monitor

    def crop(self, rect: Rect) -> Capture:
        """Cut ``rect`` (screen pixels) out of this frozen capture, exactly: how a region overlay takes its pick.

        Raises CaptureError when ``rect`` lies outside the captured area.
        """
        inside = rect.intersect(self.rect)
        if inside is None:
            raise CaptureError(f"the region {rect} lies outside the captured area {self.rect}")
        x0, y0 = inside.left - self.rect.left, inside.top - self.rect.top
        image = self.image.crop((x0, y0, x0 + inside.width, y0 + inside.height))
        mons = list(self.monitors) or [self.monitor]
        return Capture(image, inside, _monitor_for(inside, mons), self.monitors)


# -- seams: cursor position and the mss factory ---------------------------------------------------------------
CursorSource = Callable[[], tuple[int, int]]


def _x11_cursor() -> tuple[int, int]:
    from Xlib import display as xdisplay

    try:
        d = xdisplay.Display()
    except Exception as exc:
        raise CaptureError(f"cannot open the X display to find the cursor: {exc}") from exc
    try:
        reply = d.screen().root.query_pointer()
        return int(reply.root_x), int(reply.root_y)
    finally:
        d.close()


def _win32_cursor() -> tuple[int, int]:
    import ctypes

    from qwen_tray_client import win32

    point = win32.POINT()
    if not win32.call("GetCursorPos", ctypes.byref(point)):
        raise CaptureError("GetCursorPos failed (is the desktop locked?)")
    return int(point.x), int(point.y)


def cursor_position() -> tuple[int, int]:
    """Where the mouse pointer is, in virtual-desktop pixels."""
    return _win32_cursor() if sys.platform == "win32" else _x11_cursor()


def _open_mss() -> Any:
    import mss

    factory = getattr(mss, "MSS", None) or mss.mss  # mss >= 10.2 deprecates the mss.mss() factory
    try:
        return factory()
    except Exception as exc:  # ScreenShotError, or no display at all
        raise CaptureError(f"cannot open the screen for capture: {exc}") from exc


# -- queries ---------------------------------------------------------------------------------------------------
def _layout() -> tuple[Rect, list[Rect]]:
    with _open_mss() as sct:
        desktop, singles = _layout_of(sct)
    return desktop, list(singles)


def virtual_rect() -> Rect:
    """The whole virtual desktop (mss monitors[0]); its origin can be negative."""
    return _layout()[0]


def monitors() -> list[Rect]:
    """Each monitor's rectangle (at least one: the whole desktop when the system reports none)."""
    return _layout()[1]


def _monitor_for(rect: Rect, mons: list[Rect]) -> Rect:
    """The monitor holding the centre of ``rect`` (the nearest one when the centre falls in a gap)."""
    cx, cy = rect.left + rect.width // 2, rect.top + rect.height // 2
    return min(mons, key=lambda m: (m.distance2(cx, cy), -(m.intersect(rect) or Rect(0, 0, 0, 0)).width))


def monitor_at(x: int, y: int) -> Rect:
    """The monitor containing the point (the nearest one when it lies in a gap between monitors)."""
    return _monitor_for(Rect(x, y, 1, 1), monitors())


# -- captures --------------------------------------------------------------------------------------------------
def _grab(sct: Any, rect: Rect) -> Image.Image:
    shot = sct.grab(rect.as_mss())
    return Image.frombytes("RGB", shot.size, shot.rgb)


def _layout_of(sct: Any) -> tuple[Rect, tuple[Rect, ...]]:
    mons = [Rect.from_mss(m) for m in sct.monitors]
    return mons[0], tuple(mons[1:] or mons[:1])


def region(rect: Rect) -> Capture:
    """Capture ``rect`` (screen pixels), clipped to the virtual desktop; CaptureError when nothing is left."""
    with _open_mss() as sct:
        desktop, singles = _layout_of(sct)
        inside = rect.intersect(desktop)
        if inside is None:
            raise CaptureError(f"the region {rect} lies outside the screen {desktop}")
        return Capture(_grab(sct, inside), inside, _monitor_for(inside, list(singles)), singles)


def virtual_desktop() -> Capture:
    """Capture every monitor at once: the frozen background of the region overlay."""
    with _open_mss() as sct:
        desktop, singles = _layout_of(sct)
        return Capture(_grab(sct, desktop), desktop, desktop, singles)


def monitor_under_cursor(cursor: tuple[int, int] | None = None) -> Capture:
    """Capture the whole monitor the pointer is on (``cursor`` overrides where the pointer is)."""
    x, y = cursor if cursor is not None else cursor_position()
    with _open_mss() as sct:
        _, singles = _layout_of(sct)
        mon = _monitor_for(Rect(x, y, 1, 1), list(singles))
        return Capture(_grab(sct, mon), mon, mon, singles)
