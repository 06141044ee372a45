"""The tray icon through pystray (its win32 backend on Windows; macOS too), built and run on ONE thread.

Why one thread: pystray's win32 icon registers its window class when it is constructed and creates its hidden
windows when it runs; the thread that pumps their messages runs every menu callback and the modal popup menu,
and `stop()` posts WM_STOP to those windows. So the icon is constructed, run and torn down on the "tray" thread
this class starts; other threads only set the title/image (Shell_NotifyIcon NIM_MODIFY, which any thread may
send) and call `stop()`, which posts and then joins: the loop ends, pystray removes the icon (NIM_DELETE) on its
own thread, and `stop` returns within its timeout (1 s by default).

The menu's changing labels (paused, start at login, model) are callables that pystray re-reads on
`update_menu()`, which is not thread-safe: it runs on the tray thread only, after each menu action and, on
Windows, right before the menu opens (a WM_NOTIFY hook into pystray 0.19's internals, bounded in pyproject).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PIL import Image

log = logging.getLogger(__name__)


class PystrayIcon:
    """`start()`; `update(title=..., image=...)`, `refresh_menu()` and `stop()` from any thread."""

    def __init__(self, title: str, image: Image.Image, on_activate: Callable[[], None] | None = None,
                 menu: Callable[[], Any] | None = None, pystray_module: Any = None,
                 on_menu: Callable[[int, int], None] | None = None) -> None:
        """`on_menu` is ignored: pystray shows `menu` itself on a right click."""
        self.title = title
        self.image = image
        self.on_activate = on_activate  # pystray runs the menu's default item on a left click
        self._menu = menu
        self._pystray = pystray_module
        self.icon: Any = None  # the pystray.Icon, once the tray thread has built it
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.hooked = False  # whether the menu is refreshed right before it opens

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._main, name="tray", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            log.warning("the tray icon did not appear within %.0f s (no system tray?)", timeout)
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        try:
            pystray = self._pystray
            if pystray is None:
                import pystray  # imported here: it picks its backend at import
            menu = self._menu() if self._menu is not None else None
            self.icon = pystray.Icon("qwen-tray", self.image, self.title, menu)
            self.hooked = _hook_menu_refresh(self.icon, self.refresh_menu)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return

        def setup(icon: Any) -> None:
            icon.visible = True
            self._ready.set()

        try:
            self.icon.run(setup=setup)
        except Exception:
            log.exception("the tray icon's loop failed")
        finally:
            self._ready.set()

    def update(self, title: str | None = None, image: Image.Image | None = None) -> None:
        icon = self.icon
        if icon is None:
            return
        if title is not None:
            icon.title = title
        if image is not None:
            icon.icon = image

    def refresh_menu(self) -> None:
        """Re-read the menu's labels (call on the tray thread: from a menu callback or the WM_NOTIFY hook)."""
        icon = self.icon
        if icon is not None and getattr(icon, "HAS_MENU", False):
            try:
                icon.update_menu()
            except Exception:
                log.debug("menu update failed", exc_info=True)

    def stop(self, timeout: float = 1.0) -> None:
        icon = self.icon
        if icon is not None:
            try:
                icon.stop()
            except Exception:
                log.warning("the tray icon did not stop cleanly", exc_info=True)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the tray thread did not end within %.1f s", timeout)


def _hook_menu_refresh(icon: Any, refresh: Callable[[], None]) -> bool:
    """Windows: refresh the menu on right-click, on the tray thread, just before pystray shows it.

    Uses pystray 0.19's internals (`Icon._message_handlers`, `pystray._util.win32`): pyproject bounds pystray
    below 0.20 for this. Without them (another backend or version) the menu is still refreshed after each
    action, so a label is at worst one click stale. Returns whether the hook is in place.
    """
    handlers = getattr(icon, "_message_handlers", None)
    if not isinstance(handlers, dict):
        return False
    try:
        from pystray._util import win32  # type: ignore[import-not-found]
    except Exception:
        return False
    notify = handlers.get(win32.WM_NOTIFY)
    if notify is None:
        return False

    def on_notify(wparam: Any, lparam: Any) -> Any:
        if lparam == win32.WM_RBUTTONUP:
            refresh()
        return notify(wparam, lparam)

    handlers[win32.WM_NOTIFY] = on_notify
    return True
