"""Desktop figures under Xvfb: monitor capture time, and hotkey press -> popup on screen.

Why X events and not polling: the popup's arrival is a MapNotify on the root
window; waiting for that event (python-xlib) times it to the event, where an
`xdotool search --sync` loop would add its own polling interval. Keys go in
through XTEST from this process, so the clock starts at the key press itself.
"""

from __future__ import annotations

import os
import select
import time
from typing import Any

from procs import BenchError, Daemon

POPUP_PREFIX = "qwen-tray"


def capture_times(xv: Any, repeats: int) -> list[float]:
    """Seconds for `qwen_tray.capture.monitor_under_cursor()` on a 1920x1080 screen (the hotkey's capture)."""
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = xv.display
    try:
        from qwen_tray import capture

        capture.monitor_under_cursor()  # first use opens the X connection
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            shot = capture.monitor_under_cursor()
            out.append(time.perf_counter() - t0)
        size = getattr(shot, "image", shot)
        if hasattr(size, "size") and tuple(size.size) != (xv.width, xv.height):
            raise BenchError(f"capture was {size.size}, not the {xv.width}x{xv.height} monitor")
        return out
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old


def _name(win: Any) -> str:
    try:
        return win.get_wm_name() or ""
    except Exception:  # noqa: BLE001 - the window may be gone already
        return ""


def _wait_event(disp: Any, kinds: tuple[int, ...], deadline: float, window: int | None = None
                ) -> tuple[float, Any] | None:
    """Block on the X socket until an event of `kinds` arrives for `window` (by id: a destroyed window
    has no name any more) or, without one, for a window named qwen-tray...; return (time, window)."""
    while time.monotonic() < deadline:
        while disp.pending_events():
            ev = disp.next_event()
            if ev.type in kinds:
                t = time.perf_counter()
                if ev.window.id == window if window is not None else _name(ev.window).startswith(POPUP_PREFIX):
                    return t, ev.window
        select.select([disp], [], [], max(0.0, deadline - time.monotonic()))
    return None


def _keys(disp: Any, names: list[str]) -> None:
    from Xlib import XK, X
    from Xlib.ext import xtest

    codes = [disp.keysym_to_keycode(XK.string_to_keysym(n)) for n in names]
    for c in codes:
        xtest.fake_input(disp, X.KeyPress, c)
    for c in reversed(codes):
        xtest.fake_input(disp, X.KeyRelease, c)
    disp.flush()


def hotkey_to_popup(xv: Any, daemon: Daemon, repeats: int) -> list[float]:
    """Start the desktop daemon on `xv`, press Ctrl+Alt+Q `repeats` times; seconds until the popup maps."""
    from Xlib import X, display

    daemon.start()  # `qwen-tray run` with DISPLAY set: tray-less desktop, hotkeys grabbed on the root
    disp = display.Display(xv.display)
    try:
        root = disp.screen().root
        root.change_attributes(event_mask=X.SubstructureNotifyMask)
        disp.sync()
        out: list[float] = []
        for i in range(repeats + 1):  # the first is a warm-up (Tk builds the popup's widgets)
            while disp.pending_events():
                disp.next_event()
            t0 = time.perf_counter()
            _keys(disp, ["Control_L", "Alt_L", "q"])
            got = _wait_event(disp, (X.MapNotify,), time.monotonic() + 30)
            if got is None:
                raise BenchError("the popup did not appear within 30 s of Ctrl+Alt+Q")
            if i:
                out.append(got[0] - t0)
            time.sleep(0.3)
            _keys(disp, ["Escape"])
            if _wait_event(disp, (X.UnmapNotify, X.DestroyNotify), time.monotonic() + 15, got[1].id) is None:
                raise BenchError("the popup did not close on Escape")
            time.sleep(0.3)
        return out
    finally:
        disp.close()
        daemon.stop()
