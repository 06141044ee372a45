"""Global hotkeys: one interface (``base.HotkeyListener``), one backend per platform, chosen here.

Backends (config ``hotkey.backend``): ``auto`` = ``registerhotkey`` on Windows (user32 RegisterHotKey on its
own message-loop thread: no low-level hook that Windows can silently drop), ``keyboard`` (opt-in, Windows only:
the ``keyboard`` package's hook), ``xlib`` (X11 XGrabKey; the ``auto`` choice elsewhere).
"""

from __future__ import annotations

import sys

from qwen_tray.hotkey.base import HotkeyListener, HotkeyTaken, HotkeyUnavailable
from qwen_tray.hotkey.parse import BACKENDS, Hotkey, HotkeyError, parse_hotkey

__all__ = [
    "BACKENDS", "Hotkey", "HotkeyError", "HotkeyListener", "HotkeyTaken", "HotkeyUnavailable", "create_listener",
    "parse_hotkey", "resolve_backend",
]  # fmt: skip


def resolve_backend(backend: str, platform: str | None = None) -> str:
    """The concrete backend for ``backend`` on ``platform`` (default: this one); HotkeyUnavailable if it can't run."""
    platform = platform or sys.platform
    if backend not in BACKENDS:
        raise HotkeyUnavailable(f"unknown hotkey backend {backend!r} (choose one of {', '.join(BACKENDS)})")
    windows = platform == "win32"
    if backend == "auto":
        return "registerhotkey" if windows else "xlib"
    if backend in ("registerhotkey", "keyboard") and not windows:
        raise HotkeyUnavailable(f"the {backend!r} hotkey backend works on Windows only; use 'xlib' or 'auto' here")
    if backend == "xlib" and windows:
        raise HotkeyUnavailable("the 'xlib' hotkey backend needs X11; use 'auto' or 'registerhotkey' on Windows")
    return backend


def create_listener(backend: str = "auto") -> HotkeyListener:
    """A ready (not yet started) listener for the configured backend on this platform."""
    chosen = resolve_backend(backend)
    if chosen == "registerhotkey":
        from qwen_tray.hotkey.win32_backend import Win32HotkeyListener

        return Win32HotkeyListener()
    if chosen == "keyboard":
        from qwen_tray.hotkey.keyboard_backend import KeyboardHotkeyListener

        return KeyboardHotkeyListener()
    from qwen_tray.hotkey.xlib_backend import XlibHotkeyListener

    return XlibHotkeyListener()
