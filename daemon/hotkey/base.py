"""The one small interface every hotkey backend implements.

Why this shape: the app registers its hotkeys by name (``ask_screen``, ``ask_region``), a combination that
another program holds must fail alone (``HotkeyTaken``) while the rest keep working, and callbacks run on the
listener's own thread, so they must only enqueue work (never touch Tk or capture the screen there).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from qwen_tray.hotkey.parse import Hotkey

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class HotkeyTaken(RuntimeError):
    """Another program already holds this combination; only this hotkey is affected."""

    def __init__(self, name: str, hotkey: Hotkey | str, detail: str = "") -> None:
        self.name = name
        self.hotkey = str(hotkey)
        msg = f"hotkey {self.hotkey} ({name}) is already taken by another program"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class HotkeyUnavailable(RuntimeError):
    """The backend cannot run here (no display, wrong platform, package missing): the message says why."""


@runtime_checkable
class HotkeyListener(Protocol):
    """Global hotkeys. ``register`` before or after ``start``; ``stop`` joins the listener thread."""

    def register(self, name: str, hotkey: Hotkey | str, callback: Callback) -> None:
        """Bind ``hotkey`` to ``callback`` under ``name`` (re-registering a name replaces it).

        Raises HotkeyTaken when another program holds the combination, HotkeyError when it is malformed.
        """

    def unregister(self, name: str) -> None:
        """Release the hotkey registered under ``name`` (no error when there is none)."""

    def start(self) -> None:
        """Start the listener thread."""

    def stop(self, timeout: float = 5.0) -> None:
        """Release every hotkey and join the listener thread."""

    def pause(self, paused: bool) -> None:
        """While paused, presses are swallowed (the grabs stay, so nothing else gets them either)."""

    @property
    def paused(self) -> bool: ...


class Dispatcher:
    """Shared bookkeeping for backends: name -> callback, the pause flag, and safe callback invocation."""

    def __init__(self) -> None:
        self._callbacks: dict[str, Callback] = {}
        self._lock = threading.Lock()
        self._paused = threading.Event()
        self.swallowed = 0  # presses ignored while paused (for the log and for tests that wait on them)

    def set(self, name: str, callback: Callback) -> None:
        with self._lock:
            self._callbacks[name] = callback

    def remove(self, name: str) -> None:
        with self._lock:
            self._callbacks.pop(name, None)

    def pause(self, paused: bool) -> None:
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def fire(self, name: str) -> None:
        """Run the callback for ``name`` unless paused; a failing callback is logged, never kills the thread."""
        if self._paused.is_set():
            self.swallowed += 1
            log.debug("hotkey %s pressed while paused: ignored", name)
            return
        with self._lock:
            callback = self._callbacks.get(name)
        if callback is None:
            return
        try:
            callback()
        except Exception:
            log.exception("hotkey callback for %s failed", name)


class PausableListener:
    """pause/paused for backends that keep a `Dispatcher` in `self._dispatch` (every backend does)."""

    _dispatch: Dispatcher

    def pause(self, paused: bool) -> None:
        self._dispatch.pause(paused)
        log.info("hotkeys %s", "paused" if paused else "resumed")

    @property
    def paused(self) -> bool:
        return self._dispatch.paused
