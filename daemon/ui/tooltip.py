"""A tooltip: the whole text of a line that is shown cut short ("…"), while the pointer is over it.

Why: the popup's status and note lines are one line each so the layout never moves; a long error message is
cut to fit, and this is where the rest of it can be read. Shown on <Enter>, gone on <Leave>: no timer.
"""

from __future__ import annotations

import contextlib
import tkinter as tk
from typing import Any

from . import theme


class Tooltip:
    """Shows `text` (when not empty) under `widget` while the pointer is over it."""

    def __init__(self, widget: tk.Misc, palette: theme.Palette, wrap: int = 480) -> None:
        self.widget = widget
        self.text = ""
        self._palette = palette
        self._wrap = wrap
        self.win: tk.Toplevel | None = None
        widget.bind("<Enter>", self.show, add="+")
        widget.bind("<Leave>", self.hide, add="+")
        widget.bind("<Destroy>", self.hide, add="+")

    def show(self, event: Any = None) -> None:
        self.hide()
        if not self.text:
            return
        p = self._palette
        self.win = tk.Toplevel(self.widget)
        self.win.withdraw()
        self.win.overrideredirect(True)
        self.win.wm_attributes("-topmost", True)
        tk.Label(self.win, text=self.text, justify="left", wraplength=self._wrap, font=theme.CAPTION_FONT,
                 background=p.surface, foreground=p.fg, padx=8, pady=5, highlightthickness=1,
                 highlightbackground=p.border).pack()
        x = self.widget.winfo_rootx()
        y = self.widget.winfo_rooty() + self.widget.winfo_height() + 4
        self.win.geometry(f"+{x}+{y}")
        self.win.deiconify()

    def hide(self, event: Any = None) -> None:
        if self.win is not None:
            with contextlib.suppress(tk.TclError):
                self.win.destroy()
            self.win = None
