"""Take a hotkey another program holds as soon as it lets go, on any backend.

Why a slow backoff timer, and only while a hotkey is missing: neither X11 nor
Windows says when another client releases a key grab or a RegisterHotKey (the
other program may just exit, and a grabbing X client need not own a window).
So the only complete answer is to try again now and then: after 2 s, then twice
as long each time, at most every 30 s, and the thread exists only while some
hotkey is missing (no hotkey missing: no thread, no timer, no CPU). `poke()`
retries at once and starts the backoff afresh: the X11 listener calls it when
the desktop changes in a way that often means the other program went away (the
active window or the window list changed on the root window), so the common
case is prompt and the backoff only covers what no event reports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from qwen_tray.hotkey.base import Callback, HotkeyListener, HotkeyTaken

log = logging.getLogger(__name__)

FIRST_S = 2.0
LONGEST_S = 30.0


@dataclass(frozen=True)
class Missing:
    name: str
    combo: str
    callback: Callback


class HotkeyRetry:
    """`add()` hotkeys that were taken; `on_taken(name, combo)` runs (on the retry thread) once each is ours."""

    def __init__(self, listener: HotkeyListener, on_taken: Callable[[str, str], None],
                 first_s: float = FIRST_S, longest_s: float = LONGEST_S) -> None:
        self.listener = listener
        self.on_taken = on_taken
        self.first_s = first_s
        self.longest_s = longest_s
        self._missing: dict[str, Missing] = {}
        self._cv = threading.Condition()
        self._poked = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.attempts = 0  # retry rounds so far (for the log and tests)

    @property
    def missing(self) -> list[tuple[str, str]]:
        with self._cv:
            return [(m.name, m.combo) for m in self._missing.values()]

    def add(self, name: str, combo: str, callback: Callback) -> None:
        """Keep trying to register `combo` under `name`; starts the retry thread if none runs."""
        with self._cv:
            if self._stopping:
                return
            self._missing[name] = Missing(name, combo, callback)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hotkey-retry", daemon=True)
                self._thread.start()

    def poke(self) -> None:
        """Try again now (any thread): the desktop changed, the other program may have let go."""
        with self._cv:
            if self._missing:
                self._poked = True
                self._cv.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        delay = self.first_s
        while True:
            with self._cv:
                if not self._stopping and not self._poked:
                    self._cv.wait(delay)
                if self._poked:
                    self._poked = False
                    delay = self.first_s
                else:
                    delay = min(delay * 2, self.longest_s)
                if self._stopping:
                    self._thread = None
                    return
                todo = list(self._missing.values())
            self.attempts += 1
            for m in todo:
                try:
                    self.listener.register(m.name, m.combo, m.callback)
                except HotkeyTaken:
                    continue  # still held: the next round
                except Exception as exc:  # malformed now, or the listener stopped: give this one up
                    log.warning("hotkey %s (%s) is no longer retried: %s", m.combo, m.name, exc)
                    with self._cv:
                        self._missing.pop(m.name, None)
                    continue
                with self._cv:
                    self._missing.pop(m.name, None)
                try:
                    self.on_taken(m.name, m.combo)
                except Exception:
                    log.exception("after taking hotkey %s", m.combo)
            with self._cv:
                if not self._missing or self._stopping:
                    self._thread = None  # nothing missing: no thread, no timer
                    return
