"""An X11 system-tray icon (XEMBED, freedesktop system tray spec) on ONE thread that owns its X connection.

Why not pystray's X11 backend: it drives one python-xlib connection from two
threads (its loop, and whoever sets the icon or title), through python-xlib's
"threaded" mode. Under load we saw it hang for good: the loop thread waiting
inside python-xlib for a reply while the connection was grabbed (see
docs/decisions.md). Here a single thread does every X request; other threads
hand it work through a queue and a wake-up pipe, and it blocks in select() on
the X connection and that pipe: no polling, no shared connection.

X11 tray icons have no standard menu (pystray's X11 backend shows none): a left
click runs `on_activate` (the tray's default action) and a right click calls
`on_menu(x, y)` with the pointer's root position, on release, so the menu's own
pointer grab (Tk's popup menu, on the Tk thread) does not collide with the
implicit grab of the press. The icon keeps its aspect in a slot that is not
square (trayer gives 16x30): it is scaled to fit and centred.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import threading
from collections.abc import Callable
from typing import Any

from PIL import Image

log = logging.getLogger(__name__)

SYSTEM_TRAY_REQUEST_DOCK = 0
XEMBED_MAPPED = 1


class XTrayIcon:
    """`start()`; `update(title=..., image=...)` and `stop()` from any thread."""

    def __init__(self, title: str, image: Image.Image, on_activate: Callable[[], None] | None = None,
                 display_name: str | None = None, menu: Callable[[], Any] | None = None,
                 on_menu: Callable[[int, int], None] | None = None) -> None:
        """`menu` (pystray's) is ignored here; `on_menu(x, y)` shows our own menu at that root position."""
        self.title = title
        self.image = image
        self.on_activate = on_activate
        self.on_menu = on_menu
        self.display_name = display_name
        self.docked = threading.Event()
        self.window_id = 0
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # -- any thread -----------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Open the connection and create the icon window on the icon's thread; raise if that fails."""
        self._thread = threading.Thread(target=self._main, name="tray", daemon=True)
        self._thread.start()
        self._started.wait(timeout)
        if self._error is not None:
            raise self._error

    def update(self, title: str | None = None, image: Image.Image | None = None) -> None:
        self._send("update", (title, image))

    def refresh_menu(self) -> None:
        """Nothing to do: `on_menu`'s menu is built afresh each time it opens."""

    def stop(self, timeout: float = 1.0) -> None:
        self._send("stop", None)
        if self._thread is not None:
            self._thread.join(timeout)
        # A thread that outlives the join must not keep the app's objects (and its Tk) alive with it.
        self.on_activate = self.on_menu = None

    def _send(self, what: str, arg: Any) -> None:
        self._commands.put((what, arg))
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    # -- the icon's thread ----------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._setup()
        except BaseException as exc:  # no display, no X: start() reports it
            self._error = exc
            self._started.set()
            self._close_pipe()
            return
        self._started.set()
        try:
            self._loop()
        except Exception:
            log.exception("the tray icon's X11 loop failed")
        finally:
            with contextlib.suppress(Exception):
                self._window.destroy()
                self._d.flush()
            with contextlib.suppress(Exception):
                self._d.close()
            self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _setup(self) -> None:
        from Xlib import X, Xutil
        from Xlib import display as xdisplay

        self._X = X
        d = self._d = xdisplay.Display(self.display_name)
        screen = d.screen()
        self._root = screen.root
        self._tray_atom = d.intern_atom(f"_NET_SYSTEM_TRAY_S{d.get_default_screen()}")
        self._opcode_atom = d.intern_atom("_NET_SYSTEM_TRAY_OPCODE")
        self._manager_atom = d.intern_atom("MANAGER")
        xembed_info = d.intern_atom("_XEMBED_INFO")
        self._window = self._root.create_window(
            -1, -1, 24, 24, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
            event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask | X.ButtonReleaseMask,
            background_pixel=screen.black_pixel,
        )
        self.window_id = int(self._window.id)
        self._window.set_wm_class("qwen-traySystemTrayIcon", "qwen-tray")
        self._window.set_wm_name(self.title)
        self._window.set_wm_normal_hints(flags=Xutil.PMinSize, min_width=16, min_height=16)
        self._window.change_property(xembed_info, xembed_info, 32, [0, XEMBED_MAPPED])
        # A tray host that starts (or restarts) later announces itself with MANAGER on the root window.
        self._root.change_attributes(event_mask=X.StructureNotifyMask)
        self._manager: Any = None
        self._scaled: Image.Image | None = None
        self._dock()
        d.flush()

    def _dock(self) -> None:
        owner = self._d.get_selection_owner(self._tray_atom)
        if not owner or owner == self._X.NONE or not int(owner.id):
            log.info("no system tray yet: the icon will dock when one starts")
            self._manager = None
            return
        from Xlib.protocol import event

        self._manager = owner
        owner.change_attributes(event_mask=self._X.StructureNotifyMask)  # its DestroyNotify: the tray went away
        msg = event.ClientMessage(window=owner, client_type=self._opcode_atom,
                                  data=(32, [self._X.CurrentTime, SYSTEM_TRAY_REQUEST_DOCK, self.window_id, 0, 0]))
        owner.send_event(msg, event_mask=self._X.NoEventMask)
        self._d.flush()

    def _loop(self) -> None:
        X = self._X
        fd = self._d.fileno()
        while True:
            # Events python-xlib already read (during a round trip) come first; then sleep on both inputs.
            if not self._d.pending_events():
                readable, _, _ = select.select([fd, self._wake_r], [], [])
                if self._wake_r in readable:
                    with contextlib.suppress(BlockingIOError, OSError):
                        os.read(self._wake_r, 4096)
            while True:
                try:
                    what, arg = self._commands.get_nowait()
                except queue.Empty:
                    break
                if what == "stop":
                    return
                title, image = arg
                if title is not None and title != self.title:
                    self.title = title
                    self._window.set_wm_name(title)
                if image is not None:
                    self.image, self._scaled = image, None
                    self._draw()
            while self._d.pending_events():
                ev = self._d.next_event()
                if ev.type == X.Expose and ev.window == self._window and ev.count == 0:
                    self._draw()
                elif ev.type == X.ConfigureNotify and ev.window == self._window:
                    self._scaled = None
                    self._draw()
                elif ev.type == X.ReparentNotify and ev.window == self._window:
                    if ev.parent != self._root:
                        self.docked.set()
                elif ev.type == X.ButtonPress and ev.window == self._window and ev.detail == 1:
                    if self.on_activate is not None:
                        try:
                            self.on_activate()
                        except Exception:
                            log.exception("tray click action failed")
                elif ev.type == X.ButtonRelease and ev.window == self._window and ev.detail == 3:
                    if self.on_menu is not None:
                        try:
                            self.on_menu(int(ev.root_x), int(ev.root_y))
                        except Exception:
                            log.exception("the tray menu failed")
                elif ev.type == X.DestroyNotify and self._manager is not None and ev.window == self._manager:
                    log.info("the system tray went away; waiting for a new one")
                    self._manager = None
                    self.docked.clear()
                elif ev.type == X.ClientMessage and ev.client_type == self._manager_atom:
                    self._dock()  # a new tray host took the selection
            self._d.flush()

    def _draw(self) -> None:
        try:
            geo = self._window.get_geometry()
        except Exception:
            return
        w, h = max(1, geo.width), max(1, geo.height)
        if self._scaled is None or self._scaled.size != (w, h):
            self._scaled = fit_icon(self.image, (w, h))
        gc = self._window.create_gc()
        self._window.put_pil_image(gc, 0, 0, self._scaled)
        gc.free()


def fit_icon(image: Image.Image, size: tuple[int, int], background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """`image` scaled to fit `size` with its aspect kept, centred on `background` (the window's own colour)."""
    w, h = max(1, size[0]), max(1, size[1])
    scale = min(w / image.width, h / image.height)
    fitted = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    icon = image.convert("RGBA").resize(fitted, Image.Resampling.LANCZOS)
    base = Image.new("RGB", (w, h), background)
    base.paste(icon, ((w - fitted[0]) // 2, (h - fitted[1]) // 2), icon)
    return base
