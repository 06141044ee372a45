"""The opt-in `keyboard`-package backend, against a stand-in module (the package is Windows-only here)."""

from __future__ import annotations

import queue
import threading

import pytest

from qwen_tray.hotkey.base import HotkeyTaken, HotkeyUnavailable
from qwen_tray.hotkey.keyboard_backend import KeyboardHotkeyListener
from qwen_tray.hotkey.parse import HotkeyError


class FakeKeyboard:
    """keyboard.add_hotkey / remove_hotkey as the package behaves; ``press`` runs callbacks on a hook thread."""

    def __init__(self) -> None:
        self.hotkeys: dict[int, tuple[str, object]] = {}
        self.kwargs: list[dict[str, object]] = []
        self.next = 0

    def add_hotkey(self, hotkey: str, callback, **kwargs: object) -> int:
        self.next += 1
        self.hotkeys[self.next] = (hotkey, callback)
        self.kwargs.append(kwargs)
        return self.next

    def remove_hotkey(self, handle: int) -> None:
        del self.hotkeys[handle]

    def press(self, hotkey: str) -> None:
        callbacks = [cb for text, cb in self.hotkeys.values() if text == hotkey]
        t = threading.Thread(target=lambda: [cb() for cb in callbacks], name="keyboard-hook")
        t.start()
        t.join()


def test_registers_translated_strings_and_dispatches() -> None:
    kb = FakeKeyboard()
    lst = KeyboardHotkeyListener(kb)
    fired: queue.Queue[str] = queue.Queue()
    lst.register("ask_screen", "ctrl+alt+q", lambda: fired.put("screen"))
    lst.register("ask_region", "win+alt+PgDn", lambda: fired.put("region"))
    assert {text for text, _ in kb.hotkeys.values()} == {"ctrl+alt+q", "alt+windows+page down"}
    assert all(k.get("suppress") is False for k in kb.kwargs)
    kb.press("alt+windows+page down")
    kb.press("ctrl+alt+q")
    assert [fired.get_nowait(), fired.get_nowait()] == ["region", "screen"]
    lst.pause(True)
    kb.press("ctrl+alt+q")
    assert fired.empty()
    lst.pause(False)
    lst.register("ask_screen", "ctrl+alt+s", lambda: fired.put("moved"))
    kb.press("ctrl+alt+q")
    kb.press("ctrl+alt+s")
    assert fired.get_nowait() == "moved" and fired.empty()
    with pytest.raises(HotkeyTaken):
        lst.register("third", "ctrl+alt+s", lambda: None)
    lst.stop()
    assert kb.hotkeys == {}
    with pytest.raises(HotkeyUnavailable):
        lst.register("ask_screen", "ctrl+alt+q", lambda: None)


def test_package_refusal_is_a_hotkey_error() -> None:
    class Picky(FakeKeyboard):
        def add_hotkey(self, hotkey: str, callback, **kwargs: object) -> int:
            raise ValueError("Key 'q' is not mapped to any known key.")

    with pytest.raises(HotkeyError, match="refused"):
        KeyboardHotkeyListener(Picky()).register("x", "ctrl+alt+q", lambda: None)


def test_missing_package_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "keyboard", None)  # "import keyboard" raises ImportError
    with pytest.raises(HotkeyUnavailable, match="keyboard package"):
        KeyboardHotkeyListener()
