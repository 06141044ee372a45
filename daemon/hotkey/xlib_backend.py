"""X11 global hotkeys: a passive XGrabKey on the root window via python-xlib.

Why XGrabKey: it is how X11 desktop tools take global shortcuts; it needs no root and no /dev/input. A grab
matches the modifier state exactly, so NumLock, CapsLock and ScrollLock (where mapped) would each break it: we
grab every combination of those lock bits. Another client's grab of the same combination answers BadAccess,
which we catch per request (an error handler plus a sync round trip) and report as HotkeyTaken for that hotkey
only. The listener thread blocks in select() on the X connection and a wake-up pipe: no polling while idle.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import select
import threading

from qwen_tray.hotkey.base import Callback, Dispatcher, HotkeyTaken, HotkeyUnavailable, PausableListener
from qwen_tray.hotkey.parse import Hotkey, HotkeyError, as_hotkey, to_x11

log = logging.getLogger(__name__)

_RELEVANT = 0x01 | 0x04 | 0x08 | 0x40  # Shift, Control, Mod1 (Alt), Mod4 (Super): what a hotkey's mask may hold


class XlibHotkeyListener(PausableListener):
    """Hotkeys on one X display (``display_name`` None = $DISPLAY), with their own connection and thread."""

    def __init__(self, display_name: str | None = None) -> None:
        try:
            from Xlib import XK, X, error
            from Xlib import display as xdisplay
        except ImportError as exc:  # python-xlib is a Linux-only dependency
            raise HotkeyUnavailable("X11 hotkeys need the python-xlib package") from exc
        self._X, self._XK, self._error = X, XK, error
        try:
            self._display = xdisplay.Display(display_name)
        except Exception as exc:  # Xlib raises DisplayNameError, DisplayConnectionError, ConnectionClosedError...
            where = display_name or os.environ.get("DISPLAY")
            raise HotkeyUnavailable(f"cannot open X display {where!r}: {exc}") from exc
        self._root = self._display.screen().root
        self._xlock = threading.RLock()  # every X request goes through this lock
        self._lock_variants = self._lock_masks()
        self._hotkeys: dict[str, Hotkey] = {}  # name -> what the user asked for
        self._grabs: dict[str, tuple[int, int]] = {}  # name -> (keycode, mask) currently grabbed
        self.mapping_changes = 0  # keyboard/modifier mapping changes handled (a regrab each)
        self._by_combo: dict[tuple[int, int], str] = {}
        self._dispatch = Dispatcher()
        self._last_release: dict[int, int] = {}  # keycode -> server time of its last KeyRelease
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- setup -----------------------------------------------------------------------------------------------
    def _lock_masks(self) -> list[int]:
        """Every combination of CapsLock, NumLock and ScrollLock bits, as mapped on this server."""
        X, XK = self._X, self._XK
        locks = [X.LockMask]
        mapping = self._display.get_modifier_mapping()
        for name in ("Num_Lock", "Scroll_Lock"):
            keycode = self._display.keysym_to_keycode(XK.string_to_keysym(name))
            for index, keycodes in enumerate(mapping):
                if keycode and keycode in keycodes and index >= 3:  # Mod1..Mod5 only (0-2: Shift, Lock, Control)
                    locks.append(1 << index)
        variants = {0}
        for n in range(1, len(locks) + 1):
            for combo in itertools.combinations(locks, n):
                variants.add(sum(set(combo)))
        return sorted(variants)

    @property
    def ignored_mask(self) -> int:
        """The lock bits ignored when matching a press (CapsLock | NumLock | ScrollLock as mapped here)."""
        return max(self._lock_variants)

    # -- HotkeyListener --------------------------------------------------------------------------------------
    def register(self, name: str, hotkey: Hotkey | str, callback: Callback) -> None:
        hk = as_hotkey(hotkey)
        with self._xlock:
            if self._closed:
                raise HotkeyUnavailable("the hotkey listener is stopped")
            for other, other_hk in self._hotkeys.items():
                if other != name and other_hk == hk:
                    raise HotkeyTaken(name, hk, f"it is already bound here to {other!r}")
            self._forget(name)  # re-registering a name replaces its old combination
            self._grab(name, hk)
            self._hotkeys[name] = hk
            self._dispatch.set(name, callback)
        self._wake()  # the sync may have queued events the listener thread has not seen
        log.info("hotkey %s registered for %s", hk, name)

    def unregister(self, name: str) -> None:
        with self._xlock:
            if not self._closed:
                self._forget(name)
                self._display.sync()

    def _forget(self, name: str) -> None:
        self._ungrab(name)
        self._hotkeys.pop(name, None)
        self._dispatch.remove(name)

    def _grab(self, name: str, hk: Hotkey) -> None:
        """Grab every lock variant of ``hk``; all or nothing (HotkeyTaken on BadAccess). Caller holds _xlock."""
        combo = to_x11(hk)
        keycode = self._display.keysym_to_keycode(combo.keysym)
        if not keycode:
            raise HotkeyError(f"hotkey {hk}: this keyboard has no {combo.keysym_name} key")
        catcher = self._error.CatchError(self._error.BadAccess)
        for variant in self._lock_variants:
            self._root.grab_key(
                keycode, combo.mask | variant, True, self._X.GrabModeAsync, self._X.GrabModeAsync, onerror=catcher
            )
        self._display.sync()  # round trip: any BadAccess for the grabs above has arrived now
        if catcher.get_error() is not None:
            for variant in self._lock_variants:
                self._root.ungrab_key(keycode, combo.mask | variant)
            self._display.sync()
            raise HotkeyTaken(name, hk, "X11 refused the grab (BadAccess)")
        self._grabs[name] = (keycode, combo.mask)
        self._by_combo[(keycode, combo.mask)] = name

    def _ungrab(self, name: str) -> None:
        grab = self._grabs.pop(name, None)
        if grab is None:
            return
        self._by_combo.pop(grab, None)
        keycode, mask = grab
        for variant in self._lock_variants:
            self._root.ungrab_key(keycode, mask | variant)

    def _regrab(self) -> None:
        """After a keyboard or modifier mapping change, grab again where the keys are now. Caller holds _xlock."""
        for name in list(self._grabs):
            self._ungrab(name)
        self._lock_variants = self._lock_masks()
        for name, hk in list(self._hotkeys.items()):
            try:
                self._grab(name, hk)
            except (HotkeyTaken, HotkeyError) as exc:
                log.error("after a keyboard mapping change: %s", exc)
        self.mapping_changes += 1

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="hotkeys-x11", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():  # stop from a callback
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the X11 hotkey thread did not stop within %.1f s", timeout)
        with self._xlock:
            if not self._closed:
                self._closed = True
                try:
                    for name in list(self._grabs):
                        self._ungrab(name)
                    self._display.close()
                except Exception as exc:  # the server may already be gone; nothing left to release then
                    log.debug("closing the X connection: %s", exc)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the listener thread ---------------------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"w")

    def _run(self) -> None:
        fd = self._display.fileno()
        try:
            while not self._stopping:
                for name in self._drain():
                    self._dispatch.fire(name)
                if self._stopping:  # a callback may have called stop(); its fds are closed now
                    break
                readable, _, _ = select.select([fd, self._wake_r], [], [])
                if self._wake_r in readable:
                    os.read(self._wake_r, 64)
        except Exception as exc:  # the X server went away: hotkeys end, the rest of the app keeps running
            if not self._stopping:
                log.error("X11 hotkey listener stopped: %s", exc)

    def _drain(self) -> list[str]:
        """Read every queued X event (under the lock) and return the hotkey names to fire, in order."""
        X = self._X
        fired: list[str] = []
        with self._xlock:
            if self._closed:
                return fired
            while self._display.pending_events():
                event = self._display.next_event()
                if event.type == X.MappingNotify:
                    if event.request in (X.MappingKeyboard, X.MappingModifier):
                        self._display.refresh_keyboard_mapping(event)
                        self._regrab()  # the keys may sit on other keycodes now (layout switch, xmodmap)
                elif event.type == X.KeyRelease:
                    self._last_release[event.detail] = event.time
                elif event.type == X.KeyPress:
                    if self._last_release.get(event.detail) == event.time:
                        continue  # auto-repeat: X sends Release+Press with one timestamp while a key is held
                    mask = event.state & _RELEVANT & ~self.ignored_mask
                    name = self._by_combo.get((event.detail, mask))
                    if name is not None:
                        fired.append(name)
        return fired
