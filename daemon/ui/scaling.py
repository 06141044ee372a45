"""Per-monitor scaling for a popup: Tk 8.6 sizes everything for the DPI it read at start-up.

Why: with per-monitor DPI awareness (qwen_tray.dpi), Windows hands Tk real pixels, but Tk converts points to
pixels with the one `tk scaling` it took from the primary monitor at start and ignores WM_DPICHANGED. A popup
opened on a 200 % monitor next to a 100 % primary would be half-size. So each popup is scaled once, after it is
built and before it is placed, by (its monitor's DPI) / (Tk's DPI): fonts (widgets and Text tags) and the pixel
paddings and wrap lengths. Elsewhere (X11) the monitor's DPI is unknown (None) and nothing changes.
"""

from __future__ import annotations

import tkinter as tk
import tkinter.font
from collections.abc import Callable

from ..dpi import monitor_dpi
from .geometry import Rect

PIXEL_OPTIONS = ("padx", "pady", "wraplength")
DpiSource = Callable[[int, int], "int | None"]


def popup_factor(root: tk.Misc, monitor: Rect, dpi_of: DpiSource | None = None) -> float:
    """How much bigger than Tk's own sizes a window on `monitor` must be (1.0 when unknown or the same)."""
    left, top, width, height = monitor
    dpi = (dpi_of or monitor_dpi)(left + width // 2, top + height // 2)
    if not dpi:
        return 1.0
    tk_dpi = float(root.winfo_fpixels("1i"))
    factor = max(0.5, min(4.0, dpi / tk_dpi)) if tk_dpi > 0 else 1.0
    return 1.0 if abs(factor - 1.0) < 0.05 else factor


def scale_popup(win: tk.Misc, monitor: Rect, dpi_of: DpiSource | None = None) -> float:
    """Scale `win` and everything in it for `monitor`; returns the factor used."""
    factor = popup_factor(win, monitor, dpi_of)
    if factor != 1.0:
        scale_tree(win, factor)
    return factor


def scale_tree(win: tk.Misc, factor: float) -> None:
    """Fonts, Text tag fonts, pixel paddings and wrap lengths of `win` and its descendants, times `factor`."""
    fonts: dict[str, tuple] = {}
    stack: list[tk.Misc] = [win]
    while stack:
        w = stack.pop()
        stack.extend(w.winfo_children())
        _scale_options(w, factor, fonts)
        if isinstance(w, tk.Text):
            for tag in w.tag_names():
                f = w.tag_cget(tag, "font")
                if f:
                    w.tag_configure(tag, font=_scaled_font(w, f, factor, fonts))
        _scale_geometry(w, factor)


def _scale_options(w: tk.Misc, factor: float, fonts: dict[str, tuple]) -> None:
    keys = w.keys()
    for opt in PIXEL_OPTIONS:
        if opt in keys:
            value = w.winfo_pixels(w.cget(opt)) if str(w.cget(opt)) else 0
            if value:
                w.configure({opt: round(value * factor)})
    if "font" in keys and str(w.cget("font")):
        w.configure(font=_scaled_font(w, w.cget("font"), factor, fonts))


def _scale_geometry(w: tk.Misc, factor: float) -> None:
    manager = w.winfo_manager()
    if manager not in ("pack", "grid"):
        return
    info = w.pack_info() if manager == "pack" else w.grid_info()
    changes = {}
    for opt in ("padx", "pady", "ipadx", "ipady"):
        if opt in info:
            raw = info[opt]
            values = raw if isinstance(raw, (tuple, list)) else str(raw).split()
            parts = [round(w.winfo_pixels(p) * factor) for p in values]
            if any(parts):
                changes[opt] = tuple(parts) if len(parts) > 1 else parts[0]
    if changes:
        (w.pack_configure if manager == "pack" else w.grid_configure)(**changes)


def _scaled_font(w: tk.Misc, spec: object, factor: float, cache: dict[str, tuple]) -> tuple:
    key = str(spec)
    if key not in cache:
        actual = tkinter.font.Font(root=w, font=spec).actual()
        size = int(actual["size"]) or -12
        scaled = round(size * factor) or (1 if size > 0 else -1)
        style = [s for s in (actual.get("weight") == "bold" and "bold", actual.get("slant") == "italic" and "italic",
                             actual.get("underline") and "underline", actual.get("overstrike") and "overstrike") if s]
        cache[key] = (actual["family"], scaled, *style)
    return cache[key]
