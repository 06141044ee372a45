"""What the user sees, run on the Tk thread: capture, then the region overlay or the answer popup.

Why capture lives here and not on the hotkey thread: the hotkey listener must
only enqueue work, and capturing on the Tk thread lets us first take down our
own popup or overlay, so the capture never shows a window of ours. When one of
ours was open, we wait a moment (`REPAINT_MS`) for the desktop to repaint.

A second hotkey press keeps the open conversation: popups that hold a
conversation are hidden while the screen is captured (so they are not in the
new image), come back afterwards, and the new capture opens in a new popup placed
where it covers them least. Only a popup nobody asked anything in yet is closed
(there is nothing to lose). Each popup closes with Esc, as before.
"""

from __future__ import annotations

import logging
import threading
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from .. import capture as screen
from ..config import Config
from ..engine.base import GenerationOptions
from ..images import ImageRejected, check_aspect
from .geometry import Rect
from .history import History
from .popup import AnswerPopup, PopupSettings, Submitter
from .region import RegionSelector
from .workarea import work_area

log = logging.getLogger(__name__)

REPAINT_MS = 200  # after closing our own window, before capturing what is beneath it
NOTICE_MS = 4000  # how long a notice stays (a one-shot timer, not a loop)

ClipboardReader = Callable[[], "tuple[Image.Image | None, str]"]


class Notice:
    """A small topmost message; closes on click, Esc, or after a few seconds."""

    def __init__(self, root: tk.Tk, text: str, monitor: Rect) -> None:
        self.win = tk.Toplevel(root)
        self.win.withdraw()
        self.win.title("qwen-tray - notice")
        self.win.overrideredirect(True)
        self.win.wm_attributes("-topmost", True)
        label = tk.Label(self.win, text=text, padx=14, pady=10, wraplength=420, justify="left",
                         background="#1f2937", foreground="white", borderwidth=1, relief="solid")
        label.pack()
        self.win.update_idletasks()
        w = self.win.winfo_reqwidth()
        ml, mt, mw, _ = monitor
        self.win.geometry(f"+{ml + (mw - w) // 2}+{mt + 48}")
        for widget in (self.win, label):
            widget.bind("<Button-1>", lambda e: self.destroy())
        self.win.bind("<Escape>", lambda e: self.destroy())
        self.win.deiconify()
        self._timer = self.win.after(NOTICE_MS, self.destroy)
        self.text = text

    def destroy(self) -> None:
        try:
            self.win.after_cancel(self._timer)
            self.win.destroy()
        except tk.TclError:
            pass


def as_tuple(r: screen.Rect) -> Rect:
    return r.left, r.top, r.width, r.height


def popup_settings(cfg: Config, history_path: Path | None = None) -> PopupSettings:
    g = cfg.generation
    return PopupSettings(
        default_prompt=cfg.ui.default_prompt,
        presets=list(cfg.ui.presets),
        options=GenerationOptions(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p,
                                  stop=tuple(g.stop)),
        history=History(history_path) if cfg.ui.history and history_path is not None else None,
        theme=cfg.ui.theme,
    )


class Desktop:
    """The Tk-thread side of the app. Other threads reach it only through `TkInbox.post`."""

    def __init__(self, root: tk.Tk, submitter: Submitter, cfg: Config,
                 post: Callable[..., None] | None = None,
                 clipboard_image: ClipboardReader | None = None, history_path: Path | None = None) -> None:
        """`post(fn, *args)` runs fn on the Tk thread from any thread (TkInbox.post); `clipboard_image()` returns
        (image or None, reason); `history_path` is used only when `ui.history` is on."""
        self.root = root
        self.submitter = submitter
        self.settings = popup_settings(cfg, history_path)
        self._post = post or (lambda fn, *args: root.after_idle(fn, *args))
        self._inbox_post = post  # the popup's job events come through it too (None: the popup opens its own)
        self._clipboard_image = clipboard_image
        self.popups: list[AnswerPopup] = []  # open popups, oldest first
        self._hidden: list[AnswerPopup] = []  # popups withdrawn while a capture or region selection runs
        self.region: RegionSelector | None = None
        self._notice: Notice | None = None

    @property
    def popup(self) -> AnswerPopup | None:
        """The newest open popup (the one the tray's "Clear conversation" acts on)."""
        return self.popups[-1] if self.popups else None

    # -- entry points (Tk thread) ------------------------------------------------------------------------
    def ask_screen(self, delay_ms: int = 0) -> None:
        """Capture the monitor under the cursor and ask about it."""
        self._after_own_windows_gone(self._capture_screen, delay_ms)

    def ask_region(self, delay_ms: int = 0) -> None:
        """Capture the whole desktop, then let the user pick a rectangle of it."""
        self._after_own_windows_gone(self._capture_for_region, delay_ms)

    def ask_clipboard(self) -> None:
        """Ask about the image on the clipboard (a screenshot taken with another tool).

        Read on a thread of its own: on X11 the clipboard's owner may be this very
        process (an answer we copied), which can only reply while Tk keeps running.
        """
        reader = self._clipboard_image
        if reader is None:
            self.notice("Asking about the clipboard image is not available on this system.")
            return

        def read() -> None:
            try:
                image, reason = reader()
            except Exception as exc:
                image, reason = None, f"could not read the clipboard: {exc}"
            self._post(self._clipboard_read, image, reason)

        threading.Thread(target=read, name="clipboard", daemon=True).start()

    def _clipboard_read(self, image: Image.Image | None, reason: str) -> None:
        if image is None:
            log.info("ask about clipboard image: %s", reason)
            self.notice(reason[:1].upper() + reason[1:] + ".")
            return
        if self.region is not None:
            self.region.cancel()
        self._close_idle_popups()
        mon = self._monitor_under_cursor()
        center = (mon[0] + mon[2] // 2, mon[1] + mon[3] // 2, 1, 1)
        self.open_popup(image.convert("RGB"), center, mon, what="The clipboard image")

    def _monitor_under_cursor(self) -> Rect:
        try:
            x, y = screen.cursor_position()
            return as_tuple(screen.monitor_at(x, y))
        except Exception:
            return 0, 0, self.root.winfo_screenwidth(), self.root.winfo_screenheight()

    def notice(self, text: str) -> None:
        """A short message near the cursor when there is nothing to ask about (closes itself)."""
        if self._notice is not None:
            self._notice.destroy()
        self._notice = Notice(self.root, text, self._monitor_under_cursor())

    def clear_conversation(self) -> None:
        if self.popup is not None:
            self.popup.clear()

    def close_windows(self) -> None:
        """Close every popup and the overlay (cancelling running answers): the app is stopping."""
        if self.region is not None:
            self.region.cancel()
        for popup in list(self.popups):
            popup.close()
        self._hidden.clear()

    # -- sequencing ------------------------------------------------------------------------------------
    def _after_own_windows_gone(self, then: Callable[[], None], delay_ms: int) -> None:
        """Take our windows off the screen, then capture: idle popups close, conversations are only hidden."""
        had_window = bool(self.popups) or self.region is not None
        if self.region is not None:
            self.region.cancel()
        self._close_idle_popups()
        for popup in self.popups:
            if popup not in self._hidden:
                popup.hide()
                self._hidden.append(popup)
        if had_window:
            self.root.update_idletasks()
            delay_ms = max(delay_ms, REPAINT_MS)
        if delay_ms > 0:
            self.root.after(delay_ms, then)
        else:
            then()

    def _close_idle_popups(self) -> None:
        for popup in list(self.popups):
            if not popup.has_conversation():
                popup.close()

    def _show_hidden(self) -> None:
        """Bring back the popups hidden for a capture (the new popup, if any, opens after and on top)."""
        hidden, self._hidden = self._hidden, []
        for popup in hidden:
            if not popup.closed:
                popup.show()

    def _capture_screen(self) -> None:
        try:
            shot = screen.monitor_under_cursor()
        except Exception as exc:
            log.error("screen capture failed: %s", exc)
            self._show_hidden()
            self.notice(f"The screen could not be captured: {exc}")
            return
        self._show_hidden()
        log.debug("capture: monitor %dx%d at %+d%+d", shot.rect.width, shot.rect.height, shot.rect.left,
                  shot.rect.top)
        self.open_popup(shot.image, as_tuple(shot.rect), as_tuple(shot.monitor))

    def _capture_for_region(self) -> None:
        try:
            shot = screen.virtual_desktop()
        except Exception as exc:
            log.error("screen capture failed: %s", exc)
            self._show_hidden()
            self.notice(f"The screen could not be captured: {exc}")
            return
        monitors = [as_tuple(m) for m in (shot.monitors or (shot.monitor,))]

        def done(rect: Rect | None) -> None:
            self.region = None
            self._show_hidden()  # the overlay is gone: the conversations come back
            if rect is None:
                return
            picked = shot.crop(screen.Rect(*rect))
            self.open_popup(picked.image, as_tuple(picked.rect), as_tuple(picked.monitor), what="The selected area",
                            fix="drag an area less long and thin")

        self.region = RegionSelector(self.root, shot.image, as_tuple(shot.rect), monitors, done)

    def open_popup(self, image: Image.Image, target: Rect, monitor: Rect, what: str = "The captured image",
                   fix: str = "crop it into shorter pieces or pad the short side") -> AnswerPopup | None:
        """A new popup about `image`, beside `target` or in the corner of `monitor` that hides least. An image
        the model can't take (too long and thin) gets a notice saying what to do instead, and no popup."""
        try:
            check_aspect(image.width, image.height, what, fix)
        except ImageRejected as exc:
            log.info("popup: image %dx%d refused: too long and thin", image.width, image.height)
            self.notice(f"{exc}.")
            return None
        log.debug("popup: image %dx%d", image.width, image.height)
        try:
            cursor: tuple[int, int] | None = screen.cursor_position()
        except Exception:
            cursor = None
        avoid = [p.rect() for p in self.popups if not p.closed]
        popup = AnswerPopup(self.root, self.submitter, image, target, monitor, self.settings,
                            on_closed=self._popup_closed, post=self._inbox_post, work=work_area(monitor),
                            cursor=cursor, avoid=avoid)
        self.popups.append(popup)
        return popup

    def _popup_closed(self, popup: Any) -> None:
        if popup in self.popups:
            self.popups.remove(popup)
        if popup in self._hidden:
            self._hidden.remove(popup)
