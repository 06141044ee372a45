"""The tray icon: state at a glance (loading, ready, busy, error), a tooltip, and the menu.

Why the menu only calls methods of a `TrayActions` object, and is one list of
`MenuEntry` (`Tray.entries()`): the same items are shown by two toolkits.
pystray draws it on Windows (`Tray.menu()`); on X11 a tray icon has no standard
menu, so a right click on our XEMBED icon opens the same entries as a Tk popup
menu on the app's Tk thread (`tkmenu.TkTrayMenu`). Tests call the actions
directly, and the menus stay thin lists of labels.

Backends, behind one small interface (`TrayBackend`), chosen once by
`backend()` the way pystray's own `backend()` picks its module: pystray on
Windows and macOS (`wintray.py`: the icon is built, run and stopped on its own
thread), and on X11 our own single-threaded XEMBED icon (`xtray.py`), because
pystray's X11 backend shares one python-xlib connection between threads and was
seen to hang. State changes come from the scheduler's worker thread and go
through a queue to an updater thread, so a slow or stuck tray host can never
hold up the engine.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

STATES = ("loading", "ready", "busy", "error")
COLORS = {
    "loading": (245, 166, 35),
    "ready": (46, 204, 113),
    "busy": (52, 152, 219),
    "error": (231, 76, 60),
}
TOOLTIP_MAX = 127  # Windows' NOTIFYICONDATA szTip limit, less the terminator
ICON_SIZE = 64


class TrayBackend(Protocol):
    """One tray icon on a thread of its own. `start` returns once it exists; the rest from any thread."""

    def start(self, timeout: float = 10.0) -> None: ...

    def update(self, title: str | None = None, image: Image.Image | None = None) -> None: ...

    def refresh_menu(self) -> None:
        """Re-read the menu's labels (no-op where there is no menu)."""
        ...

    def stop(self, timeout: float = 1.0) -> None:
        """Remove the icon and end its thread, within `timeout`."""
        ...


BackendFactory = Callable[..., TrayBackend]  # (title, image, on_activate=..., menu=..., on_menu=...) -> TrayBackend


@dataclass(frozen=True)
class MenuEntry:
    """One menu item, toolkit-neutral. Callables are read each time the menu is shown."""

    text: str | Callable[[], str] = ""
    action: Callable[[], None] | None = None
    checked: Callable[[], bool] | None = None  # None: not a check item
    enabled: bool | Callable[[], bool] = True
    default: bool = False  # what a left click does
    key: str = ""  # the letter that picks it in a keyboard-driven menu (Tk underlines it)
    separator: bool = False

    def label(self) -> str:
        return self.text() if callable(self.text) else self.text

    def is_enabled(self) -> bool:
        return bool(self.enabled() if callable(self.enabled) else self.enabled)

    def underline(self, label: str | None = None) -> int:
        """Where `key` is in the label, preferring the start of a word (-1: no key)."""
        text = (label if label is not None else self.label()).lower()
        if not self.key:
            return -1
        starts = [i for i, ch in enumerate(text) if ch == self.key and (i == 0 or text[i - 1] == " ")]
        return starts[0] if starts else text.find(self.key)


SEPARATOR = MenuEntry(separator=True)


class PopupMenu(Protocol):
    """A menu shown at a screen position (X11: Tk's popup menu). `show` from any thread."""

    def show(self, entries: Callable[[], list[MenuEntry]], x: int, y: int) -> None: ...


def backend(platform: str | None = None, environ: Mapping[str, str] | None = None) -> BackendFactory:
    """The tray backend for this platform, decided once per Tray (like pystray's `backend()`)."""
    platform = platform or sys.platform
    environ = os.environ if environ is None else environ
    if platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        if not environ.get("DISPLAY"):
            raise RuntimeError("no X display for a tray icon ($DISPLAY is not set)")
        from .xtray import XTrayIcon

        return XTrayIcon
    from .wintray import PystrayIcon

    return PystrayIcon


class TrayActions(Protocol):
    """What the menu can do. Every method must be safe to call from the tray's thread (or any thread)."""

    def ask_screen(self) -> None: ...
    def ask_region(self) -> None: ...
    def ask_clipboard(self) -> None: ...
    def clear_conversation(self) -> None: ...
    def toggle_pause(self) -> None: ...
    def toggle_autostart(self) -> None: ...
    def open_config(self) -> None: ...
    def open_log_folder(self) -> None: ...
    def reload_model(self) -> None: ...
    def quit(self) -> None: ...

    @property
    def paused(self) -> bool: ...

    def autostart_state(self) -> tuple[bool | None, str]:
        """(enabled, reason): enabled None = not available here, with the reason shown instead."""
        ...

    def status(self) -> dict[str, Any]: ...


def draw_icon(state: str, size: int = ICON_SIZE) -> Image.Image:
    """The icon for a state: a dark rounded tile with a coloured lens, distinct in shape as well as colour."""
    if state not in COLORS:
        state = "error"
    s = 4  # draw large and scale down for smooth edges
    n = size * s
    img = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, n - 1, n - 1), radius=n // 5, fill=(31, 41, 55, 255))
    color = (*COLORS[state], 255)
    pad, width = n * 0.17, max(1, int(n * 0.11))
    box = (pad, pad, n - pad, n - pad)
    if state == "loading":
        d.arc(box, start=-90, end=180, fill=color, width=width)  # a ring still closing
    else:
        d.ellipse(box, outline=color, width=width)
    c = n / 2
    if state == "busy":
        r = n * 0.13
        d.ellipse((c - r, c - r, c + r, c + r), fill=color)
    elif state == "error":
        w = n * 0.06
        d.rectangle((c - w, n * 0.32, c + w, n * 0.56), fill=color)
        d.ellipse((c - w, n * 0.62, c + w, n * 0.62 + 2 * w), fill=color)
    elif state == "ready":
        # the "Q" tail
        d.line((c + n * 0.12, c + n * 0.12, n - pad * 0.7, n - pad * 0.7), fill=color, width=width)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def status_line(status: dict[str, Any]) -> str:
    """'Qwen3-VL-4B-Instruct-int4 on language NPU, vision GPU (hybrid)', with a demo note."""
    model = str(status.get("model") or "no model")
    placement = status.get("placement") or {}
    where = placement.get("summary") if isinstance(placement, dict) else ""
    line = f"{model} on {where}" if where else model
    if status.get("demo"):
        line += " (demo model)"
    return line


def tooltip(status: dict[str, Any]) -> str:
    """At most 127 characters: app, state, model and devices, and 'demo model' when it is one."""
    state = str(status.get("state") or "loading")
    demo = " | demo model" if status.get("demo") else ""
    model = str(status.get("model") or "")
    placement = status.get("placement") or {}
    where = placement.get("summary", "") if isinstance(placement, dict) else ""
    head = f"qwen-tray: {state}"  # ASCII only: on X11 this is the icon window's Latin-1 WM_NAME
    parts = [p for p in (model, where, str(status.get("note") or "")) if p]
    body = (" | " + " | ".join(parts)) if parts else ""
    text = (head + body + demo).encode("ascii", "replace").decode("ascii")
    if len(text) > TOOLTIP_MAX:
        room = TOOLTIP_MAX - len(head) - len(demo) - 1
        text = head + body[: max(0, room)] + "~" + demo
    return text[:TOOLTIP_MAX]


class Tray:
    """The tray icon through the platform's backend (`backend()`), with state updates off the engine's thread.

    A left click asks about the screen; a right click opens the menu (pystray's on Windows; on X11
    `popup_menu`, Tk's popup menu on the app's Tk thread). Every action is a TrayActions method.
    """

    def __init__(self, actions: TrayActions, backend_factory: BackendFactory | None = None,
                 popup_menu: PopupMenu | None = None) -> None:
        self.actions = actions
        self.popup_menu = popup_menu
        self.state = "loading"
        self._factory = backend_factory
        self.icon: TrayBackend | None = None
        self._updates: queue.SimpleQueue[tuple[str, dict[str, Any]] | None] = queue.SimpleQueue()
        self._updater: threading.Thread | None = None

    def entries(self) -> list[MenuEntry]:
        """The menu's items, the same on every platform (each letter picks its item in the Tk menu)."""
        a = self.actions

        def autostart_text() -> str:
            enabled, reason = a.autostart_state()
            return "Start at login" if enabled is not None else f"Start at login ({reason})"

        return [
            MenuEntry("Ask about screen", a.ask_screen, default=True, key="s"),
            MenuEntry("Ask about region", a.ask_region, key="r"),
            MenuEntry("Ask about clipboard image", a.ask_clipboard, key="c"),
            MenuEntry("Clear conversation", a.clear_conversation, key="l"),
            SEPARATOR,
            MenuEntry(lambda: status_line(a.status()), None, enabled=False),
            SEPARATOR,
            MenuEntry("Pause hotkeys", a.toggle_pause, checked=lambda: a.paused, key="p"),
            MenuEntry(autostart_text, a.toggle_autostart, checked=lambda: bool(a.autostart_state()[0]),
                      enabled=lambda: a.autostart_state()[0] is not None, key="i"),
            MenuEntry("Open config", a.open_config, key="o"),
            MenuEntry("Open log folder", a.open_log_folder, key="f"),
            MenuEntry("Reload model", a.reload_model, key="m"),
            SEPARATOR,
            MenuEntry("Quit", a.quit, key="q"),
        ]

    def menu(self) -> Any:
        """`entries()` as a pystray.Menu. Labels that change are callables, re-read on each update_menu."""
        import pystray

        def call(fn: Callable[[], Any]) -> Any:
            def run(icon: Any, _item: Any) -> None:
                try:
                    fn()
                finally:
                    self.refresh_menu_from_tray_thread()

            return run

        items: list[Any] = []
        for e in self.entries():
            if e.separator:
                items.append(pystray.Menu.SEPARATOR)
                continue
            text: Any = e.text if isinstance(e.text, str) else (lambda _i, f=e.text: f())
            kw: dict[str, Any] = {"default": e.default}
            if e.checked is not None:
                kw["checked"] = lambda _i, f=e.checked: f()
            if callable(e.enabled):
                kw["enabled"] = lambda _i, f=e.enabled: f()
            elif not e.enabled:
                kw["enabled"] = False
            items.append(pystray.MenuItem(text, call(e.action) if e.action is not None else None, **kw))
        return pystray.Menu(*items)

    def open_menu(self, x: int, y: int) -> None:
        """Right click on the X11 icon (its thread): show `entries()` in the popup menu at (x, y)."""
        if self.popup_menu is not None:
            self.popup_menu.show(self.entries, x, y)

    def start(self, timeout: float = 10.0) -> None:
        """Create the icon on a thread of its own (Tk keeps the main thread)."""
        factory = self._factory if self._factory is not None else backend()
        title, image = tooltip({"state": self.state}), draw_icon(self.state)
        self.icon = factory(title, image, on_activate=self.actions.ask_screen, menu=self.menu,
                            on_menu=self.open_menu if self.popup_menu is not None else None)
        self.icon.start(timeout)
        # State changes arrive on the scheduler's worker thread: hand them to a thread of our own, so a
        # slow tray host can never hold up the engine.
        self._updater = threading.Thread(target=self._apply_updates, name="tray-updates", daemon=True)
        self._updater.start()

    def set_state(self, state: str, status: dict[str, Any] | None = None) -> None:
        """New icon and tooltip for a state (any thread; never blocks)."""
        self.state = state
        self._updates.put((state, dict(status or {})))

    def _apply_updates(self) -> None:
        while True:
            item = self._updates.get()
            if item is None:
                return
            while True:  # only the newest state matters
                try:
                    newer = self._updates.get_nowait()
                except queue.Empty:
                    break
                if newer is None:
                    return
                item = newer
            state, status = item
            icon = self.icon
            if icon is None:
                continue
            try:
                icon.update(title=tooltip({**status, "state": state}), image=draw_icon(state))
            except Exception:  # a tray host that went away must not take the daemon with it
                log.warning("could not update the tray icon", exc_info=True)

    def refresh_menu_from_tray_thread(self) -> None:
        """Re-read the menu's labels; only ever called on the tray's own thread."""
        icon = self.icon
        if icon is not None:
            icon.refresh_menu()

    def stop(self, timeout: float = 1.0) -> None:
        """Remove the icon and end its threads."""
        self._updates.put(None)
        if self._updater is not None:
            self._updater.join(timeout)
        icon, self.icon = self.icon, None
        if icon is not None:
            icon.stop(timeout)
