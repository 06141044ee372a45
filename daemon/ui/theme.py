"""The popup's look in one place: light or dark (following the system, or forced by `ui.theme`), the
Sun Valley ttk theme, one palette of colours and one set of fonts.

Why Sun Valley (`sv-ttk`): it is Windows 11's own design (Fluent) redrawn for ttk, kept up, pure Tcl and PNG
(no compiled parts), with a light and a dark variant; `darkdetect` reads the system's light/dark setting on
Windows (the registry), macOS and GNOME (gsettings; anything else counts as light). The theme is applied to
the whole Tk interpreter (ttk styles are per interpreter), once per popup, so a popup opened after the user
switched the system to dark is dark.

Fonts are in points, not pixels (sv-ttk's own fonts are pixel-sized), so they follow Tk's scaling on a
high-DPI screen like every other size here.
"""

from __future__ import annotations

import logging
import sys
import tkinter as tk
import tkinter.font
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

THEMES = ("auto", "light", "dark")
BODY_FONT = "QwenTrayBody"
STRONG_FONT = "QwenTrayStrong"
HEADING_FONT = "QwenTrayHeading"
CAPTION_FONT = "QwenTrayCaption"
MONO_FONT = "QwenTrayMono"
BODY_PT = 10


@dataclass(frozen=True)
class Palette:
    """Every colour the popup uses. `mode` is "light" or "dark"."""

    mode: str
    bg: str  # the window
    fg: str
    muted: str  # secondary text: the status line, the note line
    accent: str  # links, the question in the transcript, the input's focus ring
    surface: str  # the answer and input boxes
    border: str
    code_bg: str
    code_fg: str
    select_bg: str
    error: str
    warning: str  # the demo-model note

    def answer_colours(self) -> dict[str, str]:
        """The colour mapping the answer view (daemon/ui/answer_view.py) takes, exactly its keys."""
        return {"fg": self.fg, "bg": self.surface, "code_bg": self.code_bg, "code_fg": self.code_fg,
                "muted": self.muted, "accent": self.accent, "select_bg": self.select_bg}


# Colours from Sun Valley's own palette (its -bg/-fg/-selbg/-accent) and Windows 11's Fluent text colours.
LIGHT = Palette(mode="light", bg="#fafafa", fg="#1c1c1c", muted="#5f5f5f", accent="#005fb8", surface="#fcfcfc",
                border="#d6d6d6", code_bg="#eef0f3", code_fg="#1f2328", select_bg="#b7d3f2", error="#c42b1c",
                warning="#8a5a00")
DARK = Palette(mode="dark", bg="#1c1c1c", fg="#f2f2f2", muted="#a8a8a8", accent="#60cdff", surface="#2b2b2b",
               border="#3d3d3d", code_bg="#1a1a1a", code_fg="#e6e6e6", select_bg="#264f78", error="#ff99a4",
               warning="#fce100")

Detector = Callable[[], "str | None"]


def system_mode() -> str | None:
    """"light" or "dark" from the system setting (darkdetect), None when it can't be read."""
    try:
        import darkdetect
    except ImportError:
        return None
    try:
        value = darkdetect.theme()
    except Exception as exc:  # a detector failing must never stop a popup
        log.debug("could not read the system's light/dark setting: %s", exc)
        return None
    return value.lower() if isinstance(value, str) and value.lower() in ("light", "dark") else None


def resolve_mode(setting: str, detect: Detector = system_mode) -> str:
    """`ui.theme` ("auto", "light", "dark") -> "light" or "dark"; auto follows the system, else light."""
    if setting in ("light", "dark"):
        return setting
    return detect() or "light"


def palette(mode: str) -> Palette:
    return DARK if mode == "dark" else LIGHT


def apply(root: tk.Misc, setting: str, detect: Detector = system_mode) -> Palette:
    """Use the Sun Valley theme in the right mode for the interpreter of `root`; returns the palette.

    Without sv-ttk (it is a dependency, but a broken install should still show a popup) the default ttk
    theme stays and the palette still colours our own widgets."""
    mode = resolve_mode(setting, detect)
    top = root.nametowidget(".")
    try:
        import sv_ttk

        if sv_ttk.get_theme(top) != mode:  # type: ignore[arg-type]
            sv_ttk.set_theme(mode, top)  # type: ignore[arg-type]
            # sv-ttk colours the base style in its <<ThemeChanged>> handler, bound to the main window, which
            # never gets the event while it is withdrawn (ours always is): run the handler (its proc) here.
            top.tk.call("configure_colors")
    except Exception as exc:  # noqa: BLE001
        log.warning("the Sun Valley theme could not be used (%s): the plain ttk theme is shown", exc)
    _fonts(top)
    return palette(mode)


def _fonts(root: tk.Misc) -> None:
    """Our named fonts (created once per interpreter), and Sun Valley's body font in points."""
    existing = set(tkinter.font.names(root))
    if BODY_FONT in existing:
        return
    family = _ui_family(root)
    mono = _mono_family(root)
    # Created in Tcl, not as tkinter.font.Font objects: those delete their font when garbage collected.
    specs = ((BODY_FONT, family, BODY_PT, "normal"), (STRONG_FONT, family, BODY_PT, "bold"),
             (HEADING_FONT, family, BODY_PT + 2, "bold"), (CAPTION_FONT, family, BODY_PT - 1, "normal"),
             (MONO_FONT, mono, BODY_PT, "normal"))
    for name, fam, size, weight in specs:
        root.tk.call("font", "create", name, "-family", fam, "-size", size, "-weight", weight)
    if "SunValleyBodyFont" in existing or "SunValleyBodyFont" in tkinter.font.names(root):
        root.tk.call("font", "configure", "SunValleyBodyFont", "-family", family, "-size", BODY_PT)


def _ui_family(root: tk.Misc) -> str:
    families = set(tkinter.font.families(root))
    for name in ("Segoe UI Variable Text", "Segoe UI", "Cantarell", "Noto Sans", "DejaVu Sans"):
        if name in families:
            return name
    return str(tkinter.font.nametofont("TkDefaultFont", root).actual("family"))


def _mono_family(root: tk.Misc) -> str:
    families = set(tkinter.font.families(root))
    preferred = ("Cascadia Mono", "Consolas") if sys.platform == "win32" else ("DejaVu Sans Mono", "Noto Sans Mono")
    for name in preferred:
        if name in families:
            return name
    return str(tkinter.font.nametofont("TkFixedFont", root).actual("family"))


def elide(text: str, font: tkinter.font.Font, width: int) -> str:
    """`text` on one line cut with "…" to fit `width` pixels in `font` (the whole text when it fits)."""
    line = " ".join(text.split())
    if width <= 0 or font.measure(line) <= width:
        return line
    lo, hi = 0, len(line)
    while lo < hi:  # the longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if font.measure(line[:mid].rstrip() + "\u2026") <= width:
            lo = mid
        else:
            hi = mid - 1
    return line[:lo].rstrip() + "\u2026"
