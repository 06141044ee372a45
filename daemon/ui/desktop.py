"""What the user sees, run on the Tk thread: capture, then the region overlay or the answer popup.

Why capture lives here and not on the hotkey thread: the hotkey listener must
only enqueue work, and capturing on the Tk thread lets us first take down our
own popup or overlay, so the capture never shows a window of ours. When one of
ours was open, we wait a moment (`REPAINT_MS`) for the desktop to repaint.

One popup at a time: a new question about a new capture replaces the old
conversation (which is cancelled and forgotten).
"""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from typing import Any

from PIL import Image

from .. import capture as screen
from ..config import Config
from ..engine.base import GenerationOptions
from .geometry import Rect
from .popup import AnswerPopup, PopupSettings, Submitter
from .region import RegionSelector

log = logging.getLogger(__name__)

REPAINT_MS = 200  # after closing our own window, before capturing what is beneath it


def as_tuple(r: screen.Rect) -> Rect:
    return r.left, r.top, r.width, r.height


def popup_settings(cfg: Config) -> PopupSettings:
    g = cfg.generation
    return PopupSettings(
        default_prompt=cfg.ui.default_prompt,
        presets=list(cfg.ui.presets),
        options=GenerationOptions(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p,
                                  stop=tuple(g.stop)),
    )


class Desktop:
    """The Tk-thread side of the app. Other threads reach it only through `TkInbox.post`."""

    def __init__(self, root: tk.Tk, submitter: Submitter, cfg: Config,
                 clipboard_image: Callable[[], Image.Image | None] | None = None) -> None:
        self.root = root
        self.submitter = submitter
        self.settings = popup_settings(cfg)
        self._clipboard_image = clipboard_image
        self.popup: AnswerPopup | None = None
        self.region: RegionSelector | None = None

    # -- entry points (Tk thread) ------------------------------------------------------------------------
    def ask_screen(self, delay_ms: int = 0) -> None:
        """Capture the monitor under the cursor and ask about it."""
        self._after_own_windows_gone(self._capture_screen, delay_ms)

    def ask_region(self, delay_ms: int = 0) -> None:
        """Capture the whole desktop, then let the user pick a rectangle of it."""
        self._after_own_windows_gone(self._capture_for_region, delay_ms)

    def ask_clipboard(self) -> None:
        """Ask about the image on the clipboard (a screenshot taken with another tool)."""
        try:
            image = self._clipboard_image() if self._clipboard_image is not None else None
        except Exception as exc:
            log.warning("could not read the clipboard: %s", exc)
            image = None
        if image is None:
            log.warning("ask about clipboard image: the clipboard holds no image")
            self.root.bell()
            return
        self.close_windows()
        try:
            x, y = screen.cursor_position()
            mon = screen.monitor_at(x, y)
        except Exception:
            mon = screen.Rect(0, 0, self.root.winfo_screenwidth(), self.root.winfo_screenheight())
        center = (mon.left + mon.width // 2, mon.top + mon.height // 2, 1, 1)
        self.open_popup(image.convert("RGB"), center, as_tuple(mon))

    def clear_conversation(self) -> None:
        if self.popup is not None:
            self.popup.clear()

    def close_windows(self) -> None:
        """Close our popup and overlay (cancelling a running answer)."""
        if self.region is not None:
            self.region.cancel()
        if self.popup is not None:
            self.popup.close()

    # -- sequencing ------------------------------------------------------------------------------------
    def _after_own_windows_gone(self, then: Callable[[], None], delay_ms: int) -> None:
        had_window = self.popup is not None or self.region is not None
        self.close_windows()
        if had_window:
            self.root.update_idletasks()
            delay_ms = max(delay_ms, REPAINT_MS)
        if delay_ms > 0:
            self.root.after(delay_ms, then)
        else:
            then()

    def _capture_screen(self) -> None:
        try:
            shot = screen.monitor_under_cursor()
        except Exception as exc:
            log.error("screen capture failed: %s", exc)
            self.root.bell()
            return
        log.debug("capture: monitor %dx%d at %+d%+d", shot.rect.width, shot.rect.height, shot.rect.left,
                  shot.rect.top)
        self.open_popup(shot.image, as_tuple(shot.rect), as_tuple(shot.monitor))

    def _capture_for_region(self) -> None:
        try:
            shot = screen.virtual_desktop()
        except Exception as exc:
            log.error("screen capture failed: %s", exc)
            self.root.bell()
            return
        monitors = [as_tuple(m) for m in (shot.monitors or (shot.monitor,))]

        def done(rect: Rect | None) -> None:
            self.region = None
            if rect is None:
                return
            picked = shot.crop(screen.Rect(*rect))
            self.open_popup(picked.image, as_tuple(picked.rect), as_tuple(picked.monitor))

        self.region = RegionSelector(self.root, shot.image, as_tuple(shot.rect), monitors, done)

    def open_popup(self, image: Image.Image, target: Rect, monitor: Rect) -> AnswerPopup:
        if self.popup is not None:
            self.popup.close()
        log.debug("popup: image %dx%d", image.width, image.height)
        self.popup = AnswerPopup(self.root, self.submitter, image, target, monitor, self.settings,
                                 on_closed=self._popup_closed)
        return self.popup

    def _popup_closed(self, popup: Any) -> None:
        if self.popup is popup:
            self.popup = None
