"""Where popups go and what a second ask does, on a real X server with real key and mouse events.

- A whole-screen ask puts the popup in the corner of the work area away from the pointer (not over the
  content asked about, not under a panel).
- A second ask keeps the open conversation: its popup is hidden while the screen is captured (it is not in the
  new image), comes back, and the new popup opens beside it. Through the app's own hotkey too.
- A region too long and thin for the model is refused up front with a sentence that says what to do.
"""

from __future__ import annotations

import re
import signal
import tkinter as tk

from test_app_desktop import App, wait_until
from uitools import Recorder, pump, run_while_pumping, settle
from xvfb import XvfbDisplay

from qwen_tray.config import Config
from qwen_tray.ui.desktop import Desktop
from qwen_tray.ui.geometry import MARGIN, clamp_rect
from qwen_tray.ui.popup import FRAME

BACKDROP = (40, 120, 70)


def xdo(root: tk.Tk, d: XvfbDisplay, *args: str) -> None:
    run_while_pumping(root, ["xdotool", *args], d.env())


def small_config() -> Config:
    cfg = Config()
    cfg.generation.max_new_tokens = 20
    cfg.ui.theme = "light"
    return cfg


def set_workarea(d: XvfbDisplay, rect: tuple[int, int, int, int] | None) -> None:
    """What a window manager with a 48 px bottom panel publishes (or nothing, with None)."""
    from Xlib import Xatom

    conn = d.xconn()
    root = conn.screen().root
    atom = conn.intern_atom("_NET_WORKAREA")
    if rect is None:
        root.delete_property(atom)
    else:
        root.change_property(atom, Xatom.CARDINAL, 32, list(rect))
    conn.sync()


def test_a_whole_screen_ask_goes_to_the_far_corner_of_the_work_area(tk_root: tk.Tk, recorder: Recorder,
                                                                    ui_display: XvfbDisplay) -> None:
    d = ui_display
    set_workarea(d, (0, 0, 1920, 1032))
    try:
        desk = Desktop(tk_root, recorder, small_config())
        xdo(tk_root, d, "mousemove", "300", "200")  # the user looks at the top left
        desk.ask_screen()
        pump(tk_root, lambda: desk.popup is not None and desk.popup.win.winfo_viewable(), 10, "the popup")
        settle(tk_root, 0.2)
        x, y, w, h = desk.popup.rect()  # type: ignore[union-attr]
        side, title = FRAME  # room for a window manager's frame (none under Xvfb)
        # bottom right, above the panel
        assert (x + w + 2 * side, y + h + title + side) == (1920 - MARGIN, 1032 - MARGIN)
        xdo(tk_root, d, "mousemove", "1700", "900")  # the pointer bottom right: the next one goes top left
        desk.close_windows()
        desk.ask_screen()
        pump(tk_root, lambda: desk.popup is not None and desk.popup.win.winfo_viewable(), 10, "the popup")
        settle(tk_root, 0.2)
        assert desk.popup.rect()[:2] == (MARGIN, MARGIN)  # type: ignore[union-attr]
        desk.close_windows()
    finally:
        set_workarea(d, None)


def test_a_second_ask_keeps_the_conversation_out_of_the_new_capture(tk_root: tk.Tk, recorder: Recorder,
                                                                     ui_display: XvfbDisplay) -> None:
    d = ui_display
    d.set_root_color(BACKDROP)
    desk = Desktop(tk_root, recorder, small_config())
    xdo(tk_root, d, "mousemove", "300", "200")
    desk.ask_screen()
    pump(tk_root, lambda: desk.popup is not None and desk.popup.win.winfo_viewable(), 10, "the first popup")
    first = desk.popup
    assert first is not None
    xdo(tk_root, d, "type", "--delay", "5", "keep me")
    xdo(tk_root, d, "key", "Return")
    pump(tk_root, lambda: first.state == "done", 60, "the first answer")
    transcript = first.answer_text()
    settle(tk_root, 0.2)
    old = first.rect()

    desk.ask_screen()  # what the hotkey does
    pump(tk_root, lambda: len(desk.popups) == 2 and desk.popups[1].win.winfo_viewable(), 10, "the second popup")
    settle(tk_root, 0.2)
    second = desk.popups[1]
    # The first popup is back, with its conversation; the new capture did not see it (only the backdrop there).
    assert not first.closed and first.win.winfo_viewable() and first.answer_text() == transcript
    ox, oy, ow, oh = old
    colours = {second.image.getpixel((ox + dx, oy + dy)) for dx in range(0, ow, 37) for dy in range(0, oh, 29)}
    assert colours == {BACKDROP}
    # The new popup does not cover the old one.
    overlap = clamp_rect(second.rect(), first.rect())
    assert overlap[2] * overlap[3] == 0
    # A popup nobody asked anything in is simply replaced by the next ask.
    desk.ask_screen()
    pump(tk_root, lambda: len(desk.popups) == 2 and desk.popups[1] is not second
         and desk.popups[1].win.winfo_viewable(), 10, "the third popup")
    assert second.closed and desk.popups[0] is first
    desk.close_windows()
    assert desk.popups == [] and first.closed


def test_a_long_thin_region_is_refused_with_what_to_do(tk_root: tk.Tk, recorder: Recorder,
                                                       ui_display: XvfbDisplay) -> None:
    d = ui_display
    desk = Desktop(tk_root, recorder, small_config())
    desk.ask_region()
    pump(tk_root, lambda: desk.region is not None and desk.region.win.winfo_viewable(), 10, "the overlay")
    settle(tk_root, 0.2)
    xdo(tk_root, d, "mousemove", "100", "300", "mousedown", "1")
    xdo(tk_root, d, "mousemove", "500", "302")
    xdo(tk_root, d, "mousemove", "1100", "304")
    settle(tk_root, 0.2)
    xdo(tk_root, d, "mouseup", "1")
    pump(tk_root, lambda: desk._notice is not None, 10, "the notice")
    assert desk._notice is not None
    text = desk._notice.text
    assert text.startswith("The selected area is 1000x4: one side is 250 times the other")
    assert "drag an area less long and thin" in text
    assert desk.popup is None and recorder.jobs == []  # nothing reached the engine
    desk._notice.destroy()


def test_the_hotkey_pressed_again_keeps_the_open_conversation(xvfb_tray: XvfbDisplay) -> None:
    """The app itself: ctrl+alt+q, a question, ctrl+alt+q again; both popups are there, the first answered."""
    d = xvfb_tray
    app = App(d, '[log]\nlevel = "DEBUG"\n[generation]\nmax_new_tokens = 20\n')
    try:
        app.wait_log(r"desktop ready")
        app.wait_log(r"model tiny-qwen3-vl-ov ready")
        d.xdotool("mousemove", "400", "250")
        d.xdotool("key", "ctrl+alt+q")
        d.wait_for_window("^qwen-tray - Ask about the screen$", 15)
        d.xdotool("type", "--delay", "10", "first question")
        d.xdotool("key", "Return")
        answered = d.wait_for_window("^qwen-tray - Answered$", 60)
        d.xdotool("key", "ctrl+alt+q")
        app.wait_log(r"popup: image 1920x1080", count=2)
        fresh = d.wait_for_window("^qwen-tray - Ask about the screen$", 15)
        visible = d.run("xdotool", "search", "--onlyvisible", "--name", "^qwen-tray - ", check=False).split()
        assert sorted(map(int, visible)) == sorted([answered, fresh])
        # Esc closes the new one only; the answered conversation is still there.
        d.xdotool("key", "Escape")
        app.wait_log(r"popup: closed")

        def shown() -> list[int]:
            return [int(w) for w in d.run("xdotool", "search", "--onlyvisible", "--name", "^qwen-tray - ",
                                           check=False).split()]

        wait_until(lambda: fresh not in shown(), 10, "the new popup to close")
        assert shown() == [answered]
        assert len(re.findall(r"popup: request \d+, ", app.log())) == 1
    finally:
        code = app.stop(signal.SIGTERM)
    assert code == 0, app.log()[-3000:]
