"""Things the user must see without a terminal: a self-closing notice, and an error dialog for a failed start.

Why Tk for both, on every platform: the app already runs Tk (on Windows too), a
Tk window is testable under Xvfb, and it needs no notification daemon (Xvfb and
many X11 desktops have none; pystray's notifications exist on Windows only).

- `Notice`: a small topmost window in the corner where the tray is (top right on
  X11, bottom right on Windows), for news the app has while running, such as a
  hotkey another program holds. It closes itself after `seconds` (one timer, not
  a loop), or on a click or Esc. It never takes the keyboard focus.
- `show_error`: a dialog for an error that stopped `qwen-tray run` when there is
  no terminal to print it on (a launcher or autostart). Its own Tk interpreter,
  a selectable text (so the message can be copied into a bug report or a search),
  Copy and OK. It waits until closed, like Windows' message box, but no longer
  than `ERROR_DIALOG_S`, so a session nobody looks at never keeps a process.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tkinter as tk
from collections.abc import Callable

log = logging.getLogger(__name__)

NOTICE_TITLE = "qwen-tray notice"
ERROR_TITLE = "qwen-tray error"
NOTICE_S = 12.0
ERROR_DIALOG_S = 600.0
BG, FG, BORDER = "#1f2937", "#f9fafb", "#4b5563"


class Notice:
    """One notice window on the Tk thread. `close()` any time (also from its own timer)."""

    def __init__(self, root: tk.Misc, text: str, seconds: float = NOTICE_S,
                 on_closed: Callable[[Notice], None] | None = None) -> None:
        self.text = text
        self._on_closed = on_closed
        self.win = tk.Toplevel(root, background=BORDER)
        self.win.withdraw()
        self.win.title(NOTICE_TITLE)
        self.win.overrideredirect(True)  # no decorations, no focus taken from the user's window
        self.win.wm_attributes("-topmost", True)
        frame = tk.Frame(self.win, background=BG, padx=16, pady=12)
        frame.pack(padx=1, pady=1)
        head = tk.Label(frame, text="qwen-tray", background=BG, foreground="#9ca3af", anchor="w", justify="left")
        head.pack(fill="x")
        body = tk.Label(frame, text=text, background=BG, foreground=FG, wraplength=380, justify="left", anchor="w")
        body.pack(fill="x", pady=(4, 0))
        for widget in (self.win, frame, head, body):
            widget.bind("<Button-1>", lambda _e: self.close())
        self.win.bind("<Escape>", lambda _e: self.close())
        self.win.update_idletasks()
        self.win.geometry("+{}+{}".format(*corner(self.win, self.win.winfo_reqwidth(), self.win.winfo_reqheight())))
        self.win.deiconify()
        self._timer: str | None = self.win.after(int(seconds * 1000), self.close)
        log.debug("notice shown (%d characters)", len(text))

    @property
    def open(self) -> bool:
        return self._timer is not None

    def close(self) -> None:
        if self._timer is None:
            return
        try:
            self.win.after_cancel(self._timer)
            self.win.destroy()
        except tk.TclError:
            pass
        self._timer = None
        if self._on_closed is not None:
            self._on_closed(self)


def corner(win: tk.Misc, width: int, height: int, margin: int = 16) -> tuple[int, int]:
    """Where a notice of this size goes: near the tray (X11 panels: top right; Windows' taskbar: bottom right)."""
    sw, sh = win.winfo_screenwidth(), win.winfo_screenheight()
    x = max(0, sw - width - margin)
    if sys.platform == "win32":
        return x, max(0, sh - height - 64)  # above a bottom taskbar
    return x, 40  # under a top panel's tray


def show_error(text: str, title: str = ERROR_TITLE, timeout_s: float = ERROR_DIALOG_S) -> bool:
    """A modal-looking error dialog in its own Tk interpreter; returns when closed. False when it can't show."""
    try:
        root = tk.Tk(className="qwen-tray")
    except tk.TclError as exc:  # no display after all
        log.debug("no error dialog: %s", exc)
        return False
    try:
        root.title(title)
        root.configure(padx=18, pady=14)
        root.resizable(False, False)
        tk.Label(root, text="qwen-tray could not start", font=("TkDefaultFont", 11, "bold"), anchor="w").pack(
            fill="x")
        lines = max(2, min(12, sum(len(line) // 70 + 1 for line in text.splitlines())))
        box = tk.Text(root, width=72, height=lines, wrap="word", relief="flat", borderwidth=0, font="TkDefaultFont",
                      background=root.cget("background"), highlightthickness=0)
        box.insert("1.0", text)
        box.configure(state="disabled")  # read-only, still selectable
        box.pack(fill="both", pady=(8, 12))
        buttons = tk.Frame(root)
        buttons.pack(fill="x")

        def copy() -> None:
            root.clipboard_clear()
            root.clipboard_append(text)

        ok = tk.Button(buttons, text="OK", width=10, command=root.destroy, default="active")
        ok.pack(side="right")
        tk.Button(buttons, text="Copy", width=10, command=copy).pack(side="right", padx=(0, 8))
        for key in ("<Return>", "<Escape>", "<KP_Enter>"):
            root.bind(key, lambda _e: root.destroy())
        root.bind("<Control-c>", lambda _e: copy())
        root.update_idletasks()
        w, h = root.winfo_reqwidth(), root.winfo_reqheight()
        root.geometry(f"+{max(0, (root.winfo_screenwidth() - w) // 2)}+{max(0, (root.winfo_screenheight() - h) // 3)}")
        root.wm_attributes("-topmost", True)
        root.after(int(timeout_s * 1000), root.destroy)
        root.after_idle(ok.focus_force)
        root.mainloop()
    finally:
        with contextlib.suppress(tk.TclError):
            root.destroy()
    return True
