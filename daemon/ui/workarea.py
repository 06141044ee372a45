"""The work area of a monitor: the part that taskbars, docks and panels leave free, where a popup may go.

Why: a popup placed in a monitor's corner must not sit under (or over) the taskbar. One function, one backend
per platform: Windows asks the monitor itself (GetMonitorInfoW's rcWork); X11 reads the window manager's
_NET_WORKAREA for the current desktop (one rectangle for the whole screen, so it is cut to the monitor).
Anything unknown (no window manager, an error) gives the whole monitor.
"""

from __future__ import annotations

import logging
import sys

from .geometry import Rect, clamp_rect

log = logging.getLogger(__name__)


def work_area(monitor: Rect, display: str | None = None, platform: str | None = None) -> Rect:
    """The free part of `monitor` (left, top, width, height); `monitor` itself when it can't be known."""
    plat = platform or sys.platform
    try:
        found = _windows(monitor) if plat == "win32" else _x11(display) if plat.startswith("linux") else None
    except Exception as exc:  # noqa: BLE001 - a popup is placed with or without it
        log.debug("work area unknown (%s): using the whole monitor", exc)
        found = None
    if found is None:
        return monitor
    area = clamp_rect(found, monitor)
    return area if area[2] > 0 and area[3] > 0 else monitor


def _windows(monitor: Rect) -> Rect | None:
    import ctypes

    from qwen_tray_client import win32

    left, top, width, height = monitor
    hmon = win32.call("MonitorFromPoint", win32.POINT(left + width // 2, top + height // 2),
                      win32.MONITOR_DEFAULTTONEAREST)
    if not hmon:
        return None
    info = win32.MONITORINFO()
    info.cbSize = ctypes.sizeof(win32.MONITORINFO)
    if not win32.call("GetMonitorInfoW", hmon, ctypes.byref(info)):
        return None
    r = info.rcWork
    return r.left, r.top, r.right - r.left, r.bottom - r.top


def _x11(display: str | None) -> Rect | None:
    from Xlib import X
    from Xlib import display as xdisplay

    d = xdisplay.Display(display)
    try:
        root = d.screen().root
        areas = root.get_full_property(d.intern_atom("_NET_WORKAREA"), X.AnyPropertyType)
        if areas is None or len(areas.value) < 4:
            return None
        current = root.get_full_property(d.intern_atom("_NET_CURRENT_DESKTOP"), X.AnyPropertyType)
        i = int(current.value[0]) if current is not None and len(current.value) else 0
        values = [int(v) for v in areas.value]
        if len(values) < 4 * (i + 1):
            i = 0
        x, y, w, h = values[4 * i: 4 * i + 4]
        return x, y, w, h
    finally:
        d.close()
