"""The tray's menu on X11: a Tk popup menu at the pointer, on the app's Tk thread.

Why Tk: an XEMBED tray icon has no menu of its own (the system-tray spec leaves it
to the client), and the app already runs Tk, whose menus on X11 are real
override-redirect windows with a global pointer and keyboard grab: a click
elsewhere or Esc closes them, arrow keys and each item's underlined letter pick
an item, and they stay on screen near a corner. Drawing our own menu window on
the icon's X connection would repeat all of that. The icon's thread only calls
`show()`, which hands the work to the Tk thread through the inbox.

The entries are read afresh each time the menu opens (paused, start at login, the
model line), and a chosen item's action runs on a short-lived thread, so a slow
action (systemctl for "Start at login") never holds up Tk.
"""

from __future__ import annotations

import logging
import threading
import tkinter as tk
import tkinter.font as tkfont
from collections.abc import Callable
from typing import Any

from .tray import MenuEntry

log = logging.getLogger(__name__)


class TkTrayMenu:
    """`show(entries, x, y)` from any thread posts the menu at root position (x, y) on the Tk thread."""

    def __init__(self, root: tk.Misc, post: Callable[..., None]) -> None:
        """`post(fn, *args)` runs fn on the Tk thread (TkInbox.post)."""
        self.root = root
        self._post = post
        self.menu: tk.Menu | None = None
        self._vars: list[tk.BooleanVar] = []
        self.opened = 0  # how many times the menu was shown (for the log and tests)

    def show(self, entries: Callable[[], list[MenuEntry]], x: int, y: int) -> None:
        self._post(self._show, entries, x, y)

    # -- Tk thread ----------------------------------------------------------------------------------------------
    def build(self, entries: list[MenuEntry]) -> tk.Menu:
        """The menu with these entries (the same tk.Menu, refilled)."""
        if self.menu is None:
            self.menu = tk.Menu(self.root, tearoff=False)
        menu = self.menu
        menu.delete(0, "end")
        self._vars = []
        bold: Any = None
        for e in entries:
            if e.separator:
                menu.add_separator()
                continue
            label = e.label()
            options: dict[str, Any] = {"label": label, "state": "normal" if e.is_enabled() else "disabled"}
            if e.underline(label) >= 0:
                options["underline"] = e.underline(label)
            if e.action is not None:
                options["command"] = lambda a=e.action, name=label: self._run(a, name)
            if e.default:
                if bold is None:
                    bold = tkfont.Font(root=self.root, font=menu.cget("font"))
                    bold.configure(weight="bold")
                options["font"] = bold
            if e.checked is not None:
                var = tk.BooleanVar(master=menu, value=bool(e.checked()))
                self._vars.append(var)
                menu.add_checkbutton(variable=var, onvalue=True, offvalue=False, **options)
            else:
                menu.add_command(**options)
        return menu

    def _show(self, entries: Callable[[], list[MenuEntry]], x: int, y: int) -> None:
        try:
            menu = self.build(entries())
            menu.tk_popup(x, y)  # posts it and takes the pointer and keyboard (X11: a global grab)
            self.opened += 1
            log.debug("tray menu opened at %+d%+d", x, y)  # after the grab: keys typed now reach the menu
        except Exception:
            log.exception("the tray menu could not be shown")

    def _run(self, action: Callable[[], None], name: str) -> None:
        log.debug("tray menu: %s", name)

        def run() -> None:
            try:
                action()
            except Exception:
                log.exception("the tray menu's %r failed", name)

        threading.Thread(target=run, name="tray-menu", daemon=True).start()
