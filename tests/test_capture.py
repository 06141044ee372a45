"""Screen capture with mss on a real two-monitor Xvfb desktop (RandR 1.5 monitors), with known colours."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from xvfb import XvfbDisplay

from qwen_tray import capture
from qwen_tray.capture import Capture, CaptureError, Rect

ROOT = (10, 20, 30)
RED = (220, 30, 40)
GREEN = (20, 200, 60)
LEFT_MON = Rect(0, 0, 1920, 1080)
RIGHT_MON = Rect(1920, 0, 1280, 1024)  # shorter than the left one: the desktop has a dead corner below it


@pytest.fixture
def desk(monkeypatch: pytest.MonkeyPatch) -> Iterator[XvfbDisplay]:
    with XvfbDisplay(width=3200, height=1080) as d:
        monkeypatch.setenv("DISPLAY", d.display)
        d.set_monitors([(0, 0, 1920, 1080), (1920, 0, 1280, 1024)])
        d.set_root_color(ROOT)
        d.paint(100, 200, 300, 150, RED)
        d.paint(2000, 100, 400, 300, GREEN)
        yield d


def test_layout(desk: XvfbDisplay) -> None:
    assert capture.virtual_rect() == Rect(0, 0, 3200, 1080)
    assert capture.monitors() == [LEFT_MON, RIGHT_MON]
    assert capture.monitor_at(2500, 500) == RIGHT_MON
    assert capture.monitor_at(2500, 1050) == RIGHT_MON  # the dead corner: the nearest monitor
    assert capture.monitor_at(5, 5) == LEFT_MON


def test_virtual_desktop(desk: XvfbDisplay) -> None:
    cap = capture.virtual_desktop()
    assert cap.image.mode == "RGB" and cap.image.size == (3200, 1080)
    assert cap.rect == cap.monitor == Rect(0, 0, 3200, 1080)
    assert cap.monitors == (LEFT_MON, RIGHT_MON)
    assert cap.image.getpixel((150, 250)) == RED
    assert cap.image.getpixel((2100, 200)) == GREEN
    assert cap.image.getpixel((50, 50)) == ROOT
    assert cap.image.getpixel((3000, 900)) == ROOT


def test_monitor_under_cursor_follows_the_pointer(desk: XvfbDisplay) -> None:
    desk.xdotool("mousemove", "2500", "500")
    assert capture.cursor_position() == (2500, 500)
    cap = capture.monitor_under_cursor()
    assert cap.rect == cap.monitor == RIGHT_MON and cap.image.size == (1280, 1024)
    assert cap.image.getpixel((2100 - 1920, 200)) == GREEN
    assert cap.image.getpixel((2000 - 1920, 100)) == GREEN and cap.image.getpixel((2000 - 1921, 100)) == ROOT
    desk.xdotool("mousemove", "10", "10")
    cap = capture.monitor_under_cursor()
    assert cap.rect == LEFT_MON and cap.image.size == (1920, 1080)
    assert cap.image.getpixel((150, 250)) == RED
    # An explicit position wins over the pointer (the app passes where the hotkey was pressed).
    assert capture.monitor_under_cursor(cursor=(3000, 10)).rect == RIGHT_MON


def test_region_is_exact_in_pixels(desk: XvfbDisplay) -> None:
    cap = capture.region(Rect(100, 200, 300, 150))
    assert cap.rect == Rect(100, 200, 300, 150) and cap.image.size == (300, 150)
    assert cap.image.getcolors() == [(300 * 150, RED)]  # every pixel red: no off-by-one at any edge
    assert cap.monitor == LEFT_MON
    edge = capture.region(Rect(99, 199, 2, 2))
    assert [edge.image.getpixel(p) for p in ((0, 0), (1, 0), (0, 1), (1, 1))] == [ROOT, ROOT, ROOT, RED]
    right = capture.region(Rect(2399, 399, 2, 2))  # green's last pixel is (2399, 399)
    assert [right.image.getpixel(p) for p in ((0, 0), (1, 0), (0, 1), (1, 1))] == [GREEN, ROOT, ROOT, ROOT]
    assert right.monitor == RIGHT_MON


def test_region_is_clipped_to_the_desktop(desk: XvfbDisplay) -> None:
    cap = capture.region(Rect(3100, 1000, 500, 500))
    assert cap.rect == Rect(3100, 1000, 100, 80) and cap.image.size == (100, 80)
    with pytest.raises(CaptureError, match="outside the screen"):
        capture.region(Rect(4000, 0, 10, 10))


def test_crop_of_a_frozen_capture_matches_a_fresh_grab(desk: XvfbDisplay) -> None:
    frozen = capture.virtual_desktop()
    pick = Rect.from_corners(2399, 399, 1950, 50)  # dragged from bottom-right to top-left
    assert pick == Rect(1950, 50, 450, 350)
    crop = frozen.crop(pick)
    assert crop.rect == pick and crop.image.size == (450, 350)
    assert crop.monitor == RIGHT_MON
    assert crop.image.tobytes() == capture.region(pick).image.tobytes()
    with pytest.raises(CaptureError, match="outside the captured area"):
        frozen.crop(Rect(-50, -50, 10, 10))


def test_no_display_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(CaptureError, match="cannot open the screen"):
        capture.virtual_desktop()
    with pytest.raises(CaptureError, match="cursor"):
        capture.cursor_position()


def test_windows_style_layout_with_negative_origin() -> None:
    """Monitor choice on a layout that has a monitor left of and above the primary (pure geometry)."""
    primary, left, top = Rect(0, 0, 2560, 1440), Rect(-1920, 200, 1920, 1080), Rect(300, -1080, 1920, 1080)
    mons = [primary, left, top]
    assert capture._monitor_for(Rect(-5, 500, 1, 1), mons) == left
    assert capture._monitor_for(Rect(400, -1, 1, 1), mons) == top
    assert capture._monitor_for(Rect(-1000, 0, 1, 1), mons) == left  # in the gap above `left`: nearest
    assert capture._monitor_for(Rect(-100, 300, 300, 200), mons) == primary  # centre decides
    assert Rect(-1920, 200, 1920, 1080).intersect(Rect(-10, 190, 20, 20)) == Rect(-10, 200, 10, 10)
    img_rect = Rect(-1920, -1080, 4480, 2520)
    from PIL import Image

    frozen = Capture(Image.new("RGB", (img_rect.width, img_rect.height), ROOT), img_rect, img_rect, tuple(mons))
    frozen.image.putpixel((1920 - 3, 1080 + 250), RED)  # screen pixel (-3, 250)
    crop = frozen.crop(Rect(-3, 250, 4, 4))
    assert crop.image.getpixel((0, 0)) == RED and crop.image.getpixel((1, 0)) == ROOT
    assert crop.monitor == left  # centre (-1, 252)
    assert frozen.crop(Rect(-3, 250, 8, 4)).monitor == primary  # centre (1, 252)


# -- mss's own grab path with a Windows-like layout (mss's platform seam) ------------------------------------------
class _NegativeOriginScreen:
    """Stands in for mss's platform implementation (mss.base.MSSImplementation in 10.x): a primary at (0, 0),
    one monitor left of it and one above it, so left/top are negative as on Windows. Each pixel encodes its
    own screen position (B = x mod 256, G = y mod 256), so a test can tell which pixels a grab returned."""

    LAYOUT = [
        {"left": -1920, "top": -1080, "width": 4480, "height": 2520},  # the whole virtual desktop
        {"left": 0, "top": 0, "width": 2560, "height": 1440, "is_primary": True},
        {"left": -1920, "top": 200, "width": 1920, "height": 1080},
        {"left": 300, "top": -1080, "width": 1920, "height": 1080},
    ]

    @staticmethod
    def impl_class() -> type:
        from mss.base import MSSImplementation

        class Impl(MSSImplementation):
            grabs: list[dict] = []

            def cursor(self) -> None:
                return None

            def monitors(self) -> list[dict]:
                return [dict(m) for m in _NegativeOriginScreen.LAYOUT]

            def grab(self, monitor: dict) -> bytearray:
                Impl.grabs.append(dict(monitor))
                left, top, w, h = monitor["left"], monitor["top"], monitor["width"], monitor["height"]
                data = bytearray(w * h * 4)
                for y in range(h):
                    row = bytes(b for x in range(w) for b in ((left + x) % 256, (top + y) % 256, 0, 255))
                    data[y * w * 4:(y + 1) * w * 4] = row
                return data

        return Impl


def test_mss_grabs_a_negative_origin_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed mss's grab()/monitors() (validation, ScreenShot, .rgb) with monitors at negative left/top.
    A development revision of mss refused such grabs; pyproject bounds mss to the tested range for this."""
    import mss
    import mss.base

    impl = _NegativeOriginScreen.impl_class()
    monkeypatch.setattr(mss.base, "_choose_impl", lambda **kw: impl())
    monkeypatch.setattr(capture, "_open_mss", lambda: mss.MSS())
    assert capture.virtual_rect() == Rect(-1920, -1080, 4480, 2520)
    left = Rect(-1920, 200, 1920, 1080)
    assert capture.monitor_at(-5, 500) == left

    shot = capture.region(Rect(-10, 250, 20, 4))  # straddles the left monitor and the primary
    assert shot.rect == Rect(-10, 250, 20, 4) and shot.image.size == (20, 4)
    assert shot.image.getpixel((0, 0)) == (0, 250 % 256, (-10) % 256)  # RGB from BGRA: screen pixel (-10, 250)
    assert shot.image.getpixel((19, 3)) == (0, 253 % 256, 9)
    assert impl.grabs[-1] == {"left": -10, "top": 250, "width": 20, "height": 4}  # passed through unchanged

    above = capture.region(Rect(400, -1100, 10, 40))  # clipped to the desktop's top at -1080
    assert above.rect == Rect(400, -1080, 10, 20) and above.monitor == Rect(300, -1080, 1920, 1080)


def test_mss_is_bounded_to_the_tested_range() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    spec = re.search(r'"mss([^"]*)"', text)
    assert spec and "<" in spec.group(1), "mss needs an upper bound (tested range)"
