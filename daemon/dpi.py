"""DPI awareness, set once at process start, before Tk or mss touch the screen.

Why: on a scaled Windows display (125 %, 150 %...) a DPI-unaware process gets virtualised coordinates and
bitmap-stretched captures: the region the user drags would not be the pixels captured, and text would blur.
Per-monitor v2 (Windows 10 1703+) gives real pixels on every monitor and lets Tk windows scale crisply. It can
only be set once per process, and mss sets its own (older) level on first use, so ours must come first.
Fallbacks: SetProcessDpiAwareness(PER_MONITOR) (8.1), then SetProcessDPIAware (system-aware, Vista).
Elsewhere (X11) there is nothing to do: X reports real pixels.

The Windows calls sit behind ``DpiApi`` so the fallback logic is tested on Linux with a fake.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Protocol

log = logging.getLogger(__name__)

ERROR_ACCESS_DENIED = 5  # SetProcessDpiAwarenessContext: awareness was already set (manifest or earlier call)
E_ACCESSDENIED = 0x80070005  # SetProcessDpiAwareness: same meaning, as an HRESULT

_lock = threading.Lock()
_result: str | None = None


class DpiApi(Protocol):
    """Each call returns None when the function does not exist on this Windows, 0 on success, else an error."""

    def set_context_per_monitor_v2(self) -> int | None:
        """user32.SetProcessDpiAwarenessContext(DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2 = -4)."""

    def set_awareness_per_monitor(self) -> int | None:
        """shcore.SetProcessDpiAwareness(PROCESS_PER_MONITOR_DPI_AWARE = 2); the error is the HRESULT."""

    def set_dpi_aware(self) -> int | None:
        """user32.SetProcessDPIAware()."""


class CtypesDpi:
    """The real DpiApi (Windows only), over the declared functions in ipc/win32.py."""

    def set_context_per_monitor_v2(self) -> int | None:
        from qwen_tray_client import win32

        fn = win32.fn("SetProcessDpiAwarenessContext")
        if fn is None:
            return None
        return 0 if fn(win32.HANDLE(-4)) else (win32.last_error() or -1)

    def set_awareness_per_monitor(self) -> int | None:
        from qwen_tray_client import win32

        fn = win32.fn("SetProcessDpiAwareness")
        if fn is None:
            return None
        return int(fn(2)) & 0xFFFFFFFF

    def set_dpi_aware(self) -> int | None:
        from qwen_tray_client import win32

        fn = win32.fn("SetProcessDPIAware")
        if fn is None:
            return None
        return 0 if fn() else -1


def _apply(api: DpiApi) -> str:
    err = api.set_context_per_monitor_v2()
    if err == 0:
        return "per-monitor-v2"
    if err == ERROR_ACCESS_DENIED:
        return "already-set"
    err = api.set_awareness_per_monitor()
    if err == 0:
        return "per-monitor"
    if err == E_ACCESSDENIED:
        return "already-set"
    if api.set_dpi_aware() == 0:
        return "system"
    return "unaware"


def set_dpi_awareness(api: DpiApi | None = None, platform: str | None = None) -> str:
    """Make this process DPI-aware (once; later calls return the first result). Returns what was set:
    per-monitor-v2 | per-monitor | system | already-set | unaware | not-windows.
    """
    global _result
    with _lock:
        if _result is not None:
            return _result
        if (platform or sys.platform) != "win32":
            _result = "not-windows"
            return _result
        try:
            _result = _apply(api if api is not None else CtypesDpi())
        except Exception as exc:  # never fatal: an unaware process still works, only blurrier
            log.warning("could not set DPI awareness: %s", exc)
            _result = "unaware"
        log.info("DPI awareness: %s", _result)
        return _result


def _reset_for_tests() -> None:
    global _result
    with _lock:
        _result = None


def monitor_dpi(x: int, y: int, platform: str | None = None) -> int | None:
    """The effective DPI of the monitor holding (or nearest to) the point; None off Windows or on failure.

    Windows 8.1+: MonitorFromPoint + shcore.GetDpiForMonitor(MDT_EFFECTIVE_DPI): 96 at 100 %, 192 at 200 %.
    Tk 8.6 reads one DPI at start-up (the primary monitor's) and ignores WM_DPICHANGED, so a popup on another
    monitor is scaled by `qwen_tray.ui.scaling` from this number.
    """
    if (platform or sys.platform) != "win32":
        return None
    try:
        import ctypes

        from qwen_tray_client import win32

        hmon = win32.call("MonitorFromPoint", win32.POINT(x, y), win32.MONITOR_DEFAULTTONEAREST)
        if not hmon:
            return None
        dx, dy = win32.UINT(), win32.UINT()
        if win32.call("GetDpiForMonitor", hmon, win32.MDT_EFFECTIVE_DPI, ctypes.byref(dx), ctypes.byref(dy)) != 0:
            return None
        return int(dx.value) or None
    except OSError:  # Windows 7: no shcore
        return None
