"""Region select, ShareX-style: the screen is captured first, then shown frozen and dimmed; drag a rectangle.

Why frozen: what the user selects is exactly what was on screen when the hotkey
was pressed (menus and tooltips included), and the crop is taken from that same
capture, so it is exact in screen pixels and our own overlay never appears in it.

One borderless topmost window covers the whole virtual desktop (whose origin can
be negative). The selection shows through undimmed, with its size. Esc (or the
right button) cancels; Enter takes the whole monitor under the cursor.
Runs on the Tk thread only.
"""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable

from PIL import Image, ImageEnhance, ImageTk

from .geometry import Rect, drag_rect, monitor_for

log = logging.getLogger(__name__)

TITLE = "qwen-tray region"
DIM = 0.45  # brightness of the frozen screen outside the selection
MIN_SIDE = 4  # a shorter drag is a stray click, not a selection
HINT = "Drag to select \u00b7 Enter: whole monitor \u00b7 Esc: cancel"


class RegionSelector:
    """The overlay. `on_done(rect)` gets the chosen screen rectangle, or None when cancelled."""

    def __init__(
        self,
        root: tk.Tk,
        shot: Image.Image,
        shot_rect: Rect,
        monitors: list[Rect],
        on_done: Callable[[Rect | None], None],
    ) -> None:
        self.root = root
        self.shot_rect = shot_rect
        self.monitors = monitors or [shot_rect]
        self._on_done = on_done
        self._start: tuple[int, int] | None = None
        self.selection: Rect | None = None
        self.finished = False
        left, top, width, height = shot_rect
        if shot.size != (width, height):
            raise ValueError(f"capture is {shot.size[0]}x{shot.size[1]} but its rectangle is {width}x{height}")

        self.win = tk.Toplevel(root)
        self.win.withdraw()
        self.win.title(TITLE)
        self.win.overrideredirect(True)
        self.win.wm_attributes("-topmost", True)
        # "+-200" is left of the origin; "-200" would mean 200 px from the right edge
        self.win.geometry(f"{width}x{height}+{left}+{top}")
        self._bright = ImageTk.PhotoImage(shot, master=self.win)
        self._dim = ImageTk.PhotoImage(ImageEnhance.Brightness(shot).enhance(DIM), master=self.win)
        self._sel_photo = tk.PhotoImage(master=self.win, width=1, height=1)
        c = self.canvas = tk.Canvas(self.win, width=width, height=height, highlightthickness=0, borderwidth=0,
                                    cursor="crosshair")
        c.pack()
        c.create_image(0, 0, image=self._dim, anchor="nw")
        self._sel_item = c.create_image(0, 0, image=self._sel_photo, anchor="nw", state="hidden")
        self._outline = c.create_rectangle(0, 0, 0, 0, outline="#4aa3ff", width=1, state="hidden")
        self._label_bg = c.create_rectangle(0, 0, 0, 0, fill="#1b1b1b", outline="", state="hidden")
        self._label = c.create_text(0, 0, text="", fill="white", anchor="nw", state="hidden")
        self._draw_hint()

        c.bind("<ButtonPress-1>", self._press)
        c.bind("<B1-Motion>", self._motion)
        c.bind("<ButtonRelease-1>", self._release)
        c.bind("<ButtonPress-3>", lambda e: self.cancel())
        self.win.bind("<Escape>", lambda e: self.cancel())
        self.win.bind("<Return>", lambda e: self.take_monitor())
        self.win.bind("<KP_Enter>", lambda e: self.take_monitor())
        self.win.deiconify()
        self.win.lift()
        self.win.after_idle(self._grab_focus)

    def _grab_focus(self) -> None:
        if self.finished:
            return
        self.win.focus_force()
        self.canvas.focus_set()

    def _draw_hint(self) -> None:
        """A hint on the primary (first) monitor, top centre."""
        ml, mt, mw, _ = self.monitors[0]
        x = ml - self.shot_rect[0] + mw // 2
        y = mt - self.shot_rect[1] + 24
        text = self.canvas.create_text(x, y, text=HINT, fill="white", anchor="n")
        x0, y0, x1, y1 = self.canvas.bbox(text)
        bg = self.canvas.create_rectangle(x0 - 10, y0 - 6, x1 + 10, y1 + 6, fill="#1b1b1b", outline="#4aa3ff")
        self.canvas.tag_raise(text, bg)

    # -- mouse -----------------------------------------------------------------------------------------
    def _press(self, event: tk.Event) -> None:
        self._start = (event.x, event.y)
        self._show(event.x, event.y)

    def _motion(self, event: tk.Event) -> None:
        if self._start is not None:
            self._show(event.x, event.y)

    def _release(self, event: tk.Event) -> None:
        if self._start is None:
            return
        self._show(event.x, event.y)
        self._start = None
        if self.selection is None:
            return
        x, y, w, h = self.selection
        if w < MIN_SIDE or h < MIN_SIDE:
            self._hide_selection()
            return
        self._finish((x + self.shot_rect[0], y + self.shot_rect[1], w, h))

    def _show(self, x: int, y: int) -> None:
        """Draw the selection from the press to (x, y): undimmed pixels, an outline and the size."""
        assert self._start is not None
        width, height = self.shot_rect[2], self.shot_rect[3]
        x, y = max(0, min(x, width)), max(0, min(y, height))
        sx, sy, w, h = drag_rect(*self._start, x, y)
        self.selection = (sx, sy, w, h)
        c = self.canvas
        if w < 1 or h < 1:
            self._hide_selection()
            self.selection = (sx, sy, w, h)
            return
        self._sel_photo.blank()
        self._sel_photo.configure(width=w, height=h)
        self._sel_photo.tk.call(self._sel_photo, "copy", self._bright, "-from", sx, sy, sx + w, sy + h, "-to", 0, 0)
        c.coords(self._sel_item, sx, sy)
        c.coords(self._outline, sx, sy, sx + w - 1, sy + h - 1)
        for item in (self._sel_item, self._outline, self._label_bg, self._label):
            c.itemconfigure(item, state="normal")  # visible first: a hidden item has no bbox
            c.tag_raise(item)
        c.itemconfigure(self._label, text=f"{w} \u00d7 {h}")
        ly = sy - 22 if sy >= 22 else sy + h + 4  # above the selection, or below it at the top edge
        c.coords(self._label, sx + 6, ly + 3)
        x0, y0, x1, y1 = c.bbox(self._label)
        c.coords(self._label_bg, x0 - 6, y0 - 3, x1 + 6, y1 + 3)

    def _hide_selection(self) -> None:
        self.selection = None
        for item in (self._sel_item, self._outline, self._label_bg, self._label):
            self.canvas.itemconfigure(item, state="hidden")

    # -- keys --------------------------------------------------------------------------------------------
    def take_monitor(self) -> None:
        """Enter: the whole monitor under the cursor."""
        px, py = self.win.winfo_pointerxy()
        self._finish(monitor_for((px, py), self.monitors))

    def cancel(self) -> None:
        self._finish(None)

    def _finish(self, rect: Rect | None) -> None:
        if self.finished:
            return
        self.finished = True
        self.win.destroy()
        # Free the desktop-sized images now, on the Tk thread (not whenever the GC gets to them).
        self._bright = self._dim = self._sel_photo = None  # type: ignore[assignment]
        if rect is None:
            log.debug("region: cancelled")
        else:
            log.debug("region: selected %dx%d at %+d%+d", rect[2], rect[3], rect[0], rect[1])
        self._on_done(rect)
