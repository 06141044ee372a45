"""Opt-in Windows hotkeys through the ``keyboard`` package (config ``hotkey.backend = "keyboard"``).

Why it is not the default: ``keyboard`` (0.13.5, unmaintained since 2020) installs a low-level keyboard hook,
and Windows silently removes a hook whose callback takes longer than about a second (LowLevelHooksTimeout) --
a busy Python process is enough -- after which every hotkey stops with no error (its issues #223, #238, #669).
On Linux it needs root and /dev/input. RegisterHotKey has none of this; this backend exists because the
package is part of the named stack and some setups prefer it. It cannot tell that another program holds a
combination (a hook sees every key), so HotkeyTaken is only raised for a clash inside this process.
The package is imported lazily, so nothing loads it unless the user chose it.
"""

from __future__ import annotations

import logging
from typing import Any

from qwen_tray.hotkey.base import Callback, Dispatcher, HotkeyTaken, HotkeyUnavailable, PausableListener
from qwen_tray.hotkey.parse import Hotkey, HotkeyError, as_hotkey, to_keyboard

log = logging.getLogger(__name__)


class KeyboardHotkeyListener(PausableListener):
    """Hotkeys via ``keyboard.add_hotkey``; callbacks run on the package's own listener thread."""

    def __init__(self, module: Any = None) -> None:
        if module is None:
            try:
                import keyboard as module  # opt-in dependency, Windows only
            except ImportError as exc:
                raise HotkeyUnavailable(
                    f"the 'keyboard' hotkey backend needs the keyboard package ({exc}); use backend 'auto'"
                ) from exc
        self._kb = module
        self._dispatch = Dispatcher()
        self._handles: dict[str, tuple[Any, Hotkey]] = {}
        self._stopped = False

    def register(self, name: str, hotkey: Hotkey | str, callback: Callback) -> None:
        hk = as_hotkey(hotkey)
        if self._stopped:
            raise HotkeyUnavailable("the hotkey listener is stopped")
        for other, (_, other_hk) in self._handles.items():
            if other != name and other_hk == hk:
                raise HotkeyTaken(name, hk, f"it is already bound here to {other!r}")
        self.unregister(name)
        try:
            handle = self._kb.add_hotkey(to_keyboard(hk), lambda: self._dispatch.fire(name), suppress=False)
        except ValueError as exc:  # e.g. a key this keyboard layout does not have
            raise HotkeyError(f"hotkey {hk}: the keyboard package refused it: {exc}") from exc
        except (ImportError, OSError) as exc:  # e.g. "You must be root to use this library on linux"
            raise HotkeyUnavailable(f"the keyboard package cannot listen here: {exc}") from exc
        self._handles[name] = (handle, hk)
        self._dispatch.set(name, callback)
        log.info("hotkey %s registered for %s (keyboard package)", hk, name)

    def unregister(self, name: str) -> None:
        entry = self._handles.pop(name, None)
        self._dispatch.remove(name)
        if entry is not None:
            try:
                self._kb.remove_hotkey(entry[0])
            except (KeyError, ValueError) as exc:
                log.debug("keyboard.remove_hotkey(%s): %s", name, exc)

    def start(self) -> None:
        """Nothing to do: the package starts its hook thread with the first add_hotkey."""

    def stop(self, timeout: float = 5.0) -> None:
        for name in list(self._handles):
            self.unregister(name)
        self._stopped = True
