"""The region overlay on a real X server: an xdotool drag picks an exact rectangle of the frozen screen."""

from __future__ import annotations

import tkinter as tk
from pathlib import Path

from PIL import Image
from uitools import Recorder, pump, run_while_pumping, settle
from xvfb import XvfbDisplay

from qwen_tray import capture
from qwen_tray.config import Config
from qwen_tray.ui.desktop import Desktop
from qwen_tray.ui.region import TITLE, RegionSelector

RED, BLUE, GREY = (220, 30, 30), (30, 60, 220), (128, 128, 128)


def xdo(root: tk.Tk, d: XvfbDisplay, *args: str) -> None:
    run_while_pumping(root, ["xdotool", *args], d.env())


def unpaint(d: XvfbDisplay, *wids: int) -> None:
    conn = d.xconn()
    for wid in wids:
        conn.create_resource_object("window", wid).destroy()
    conn.sync()


def delete_monitors(d: XvfbDisplay, count: int) -> None:
    """Undo `set_monitors` (RRDeleteMonitor on its names): the output's automatic monitor comes back."""
    from Xlib.protocol import rq

    class _DeleteMonitor(rq.Request):
        _request = rq.Struct(rq.Card8("opcode"), rq.Opcode(44), rq.RequestLength(), rq.Window("window"),
                             rq.Card32("name"))

    conn = d.xconn()
    for i in range(count):
        _DeleteMonitor(display=conn.display, opcode=conn.display.get_extension_major("RANDR"),
                       window=conn.screen().root, name=conn.intern_atom(f"QT-MONITOR-{i}"))
    conn.sync()


def overlay_up(root: tk.Tk, desk: Desktop) -> RegionSelector:
    pump(root, lambda: desk.region is not None and desk.region.win.winfo_viewable(), 10, "the overlay")
    assert desk.region is not None
    settle(root, 0.2)
    return desk.region


def test_drag_selects_exact_pixels_and_engine_gets_that_size(
        tk_root: tk.Tk, recorder: Recorder, ui_display: XvfbDisplay, artifacts_dir: Path) -> None:
    d = ui_display
    d.set_root_color(GREY)
    wids = [d.paint(100, 100, 400, 300, RED), d.paint(500, 100, 200, 200, BLUE)]
    try:
        desk = Desktop(tk_root, recorder, Config())
        desk.ask_region()
        sel = overlay_up(tk_root, desk)
        assert sel.win.title() == TITLE
        assert d.window_geometry(d.wait_for_window(f"^{TITLE}$")) == (0, 0, 1920, 1080)
        xdo(tk_root, d, "mousemove", "450", "150", "mousedown", "1")
        xdo(tk_root, d, "mousemove", "520", "200")
        xdo(tk_root, d, "mousemove", "600", "250")
        settle(tk_root, 0.3)
        assert sel.selection == (450, 150, 150, 100)
        d.screenshot(artifacts_dir / "region-overlay.png")
        # While the overlay is up, the screen shows the dimmed capture, and the selection undimmed.
        shot = capture.region(capture.Rect(0, 0, 1920, 1080)).image
        assert shot.getpixel((460, 200)) == RED and shot.getpixel((560, 200)) == BLUE  # inside: as captured
        dim = shot.getpixel((300, 200))
        assert all(c < r for c, r in zip(dim, RED[:1] + RED[1:], strict=True) if r > 60)  # outside: darker
        xdo(tk_root, d, "mouseup", "1")
        pump(tk_root, lambda: desk.popup is not None, 10, "the popup")
        assert desk.region is None
        popup = desk.popup
        assert popup is not None
        img = popup.image
        assert img.size == (150, 100)
        # Exact to the pixel: the red/blue boundary at screen x=500 is at x=50 of the crop.
        assert img.getpixel((0, 0)) == RED and img.getpixel((49, 99)) == RED
        assert img.getpixel((50, 0)) == BLUE and img.getpixel((149, 99)) == BLUE
        # The popup sits next to the selection, not over it.
        px, py = popup.win.winfo_rootx(), popup.win.winfo_rooty()
        assert py >= 250 or px >= 600
        xdo(tk_root, d, "key", "Return")
        pump(tk_root, lambda: popup.state == "done", 60, "the answer")
        (job,) = recorder.jobs
        assert job.messages[0].images[0].size == (150, 100)  # what goes to the engine, before the budget
        popup.close()
    finally:
        unpaint(d, *wids)


def test_escape_cancels_and_nothing_is_sent(tk_root: tk.Tk, recorder: Recorder, ui_display: XvfbDisplay) -> None:
    desk = Desktop(tk_root, recorder, Config())
    desk.ask_region()
    overlay_up(tk_root, desk)
    xdo(tk_root, ui_display, "mousemove", "200", "200", "mousedown", "1", "mousemove", "400", "300")
    xdo(tk_root, ui_display, "key", "Escape")
    pump(tk_root, lambda: desk.region is None, 10, "the overlay to close")
    xdo(tk_root, ui_display, "mouseup", "1")
    settle(tk_root, 0.3)
    assert desk.popup is None
    assert recorder.jobs == []
    assert ui_display.run("xdotool", "search", "--onlyvisible", "--name", "^qwen-tray", check=False) == ""


def test_a_click_without_a_drag_selects_nothing(tk_root: tk.Tk, recorder: Recorder,
                                                 ui_display: XvfbDisplay) -> None:
    desk = Desktop(tk_root, recorder, Config())
    desk.ask_region()
    sel = overlay_up(tk_root, desk)
    xdo(tk_root, ui_display, "mousemove", "300", "300", "click", "1")
    settle(tk_root, 0.2)
    assert desk.region is sel and desk.popup is None  # still selecting
    sel.cancel()


def test_enter_takes_the_monitor_under_the_cursor(tk_root: tk.Tk, recorder: Recorder,
                                                  ui_display: XvfbDisplay) -> None:
    d = ui_display
    d.set_monitors([(0, 0, 960, 1080), (960, 0, 960, 1080)])
    wid = d.paint(960, 0, 960, 1080, BLUE)
    try:
        desk = Desktop(tk_root, recorder, Config())
        xdo(tk_root, d, "mousemove", "1300", "500")
        desk.ask_region()
        overlay_up(tk_root, desk)
        xdo(tk_root, d, "key", "Return")
        pump(tk_root, lambda: desk.popup is not None, 10, "the popup")
        assert desk.popup is not None
        img = desk.popup.image
        assert img.size == (960, 1080)
        assert img.getpixel((0, 0)) == BLUE and img.getpixel((959, 1079)) == BLUE
        desk.popup.close()
    finally:
        unpaint(d, wid)
        delete_monitors(d, 2)


def test_overlay_maps_window_coordinates_to_a_negative_origin(tk_root: tk.Tk, ui_display: XvfbDisplay) -> None:
    """A virtual desktop starting at (-200, -100): the overlay window sits there, and a drag on the visible part
    reports screen coordinates; the crop offsets by the origin."""
    shot_rect = capture.Rect(-200, -100, 1000, 700)
    shot = Image.new("RGB", (1000, 700), GREY)
    shot.paste(RED, (300, 200, 500, 300))  # screen (100, 100) .. (300, 200)
    picked: list[tuple[int, int, int, int] | None] = []
    sel = RegionSelector(tk_root, shot, (-200, -100, 1000, 700), [(-200, -100, 1000, 700)], picked.append)
    pump(tk_root, lambda: sel.win.winfo_viewable(), 10, "the overlay")
    settle(tk_root, 0.2)
    xdo(tk_root, ui_display, "mousemove", "100", "100", "mousedown", "1", "mousemove", "200", "150",
        "mousemove", "300", "200", "mouseup", "1")
    pump(tk_root, lambda: bool(picked), 10, "the selection")
    assert picked == [(100, 100, 200, 100)]
    crop = capture.Capture(shot, shot_rect, shot_rect).crop(capture.Rect(*picked[0])).image
    assert crop.size == (200, 100)
    assert crop.getcolors() == [(200 * 100, RED)]


def test_monitor_layout_is_back_to_one_screen(tk_root: tk.Tk) -> None:
    """The two-monitor test above leaves the shared display as it found it."""
    assert capture.monitors() == [capture.Rect(0, 0, 1920, 1080)]
