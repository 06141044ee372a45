"""The RegisterHotKey backend's real logic (threads, marshalling, dispatch) against a fake user32 on Linux."""

from __future__ import annotations

import queue
import threading

import pytest

from qwen_tray.hotkey.base import HotkeyTaken, HotkeyUnavailable
from qwen_tray.hotkey.parse import MOD_NOREPEAT, parse_hotkey, to_win32
from qwen_tray.hotkey.win32_backend import (
    ERROR_HOTKEY_ALREADY_REGISTERED,
    WM_HOTKEY,
    WM_QUIT,
    Win32HotkeyListener,
)

WAIT = 10.0


class FakeUser32:
    """Behaves like user32 for one desktop: per-thread message queues, hotkeys owned by the registering thread.

    ``held`` are (modifiers, vk) pairs another program has registered. ``press`` is the user pressing keys:
    like Windows, it posts WM_HOTKEY (wParam = id) to the queue of the thread that registered the combination.
    """

    def __init__(self, held: set[tuple[int, int]] | None = None, fail_with: int = 0) -> None:
        self.lock = threading.Lock()
        self.queues: dict[int, queue.Queue[tuple[int, int, int]]] = {}
        self.owned: dict[tuple[int, int], tuple[int, int]] = {}  # (thread id, hotkey id) -> (mods, vk)
        self.held = held or set()
        self.fail_with = fail_with
        self.calls: list[tuple[str, str, tuple[int, ...]]] = []  # (api, calling thread's name, args)

    def _log(self, api: str, *args: int) -> None:
        self.calls.append((api, threading.current_thread().name, args))

    def current_thread_id(self) -> int:
        return threading.get_ident()

    def ensure_message_queue(self) -> None:
        with self.lock:
            self.queues.setdefault(threading.get_ident(), queue.Queue())

    def register_hotkey(self, hotkey_id: int, modifiers: int, vk: int) -> int:
        self._log("RegisterHotKey", hotkey_id, modifiers, vk)
        combo = (modifiers & ~MOD_NOREPEAT, vk)
        with self.lock:
            if self.fail_with:
                return self.fail_with
            if combo in self.held or combo in self.owned.values():
                return ERROR_HOTKEY_ALREADY_REGISTERED
            self.owned[(threading.get_ident(), hotkey_id)] = combo
        return 0

    def unregister_hotkey(self, hotkey_id: int) -> bool:
        self._log("UnregisterHotKey", hotkey_id)
        with self.lock:
            return self.owned.pop((threading.get_ident(), hotkey_id), None) is not None

    def get_message(self) -> tuple[int, int, int] | None:
        msg = self.queues[threading.get_ident()].get()  # blocks, like GetMessageW
        return None if msg[0] == WM_QUIT else msg

    def post_thread_message(self, thread_id: int, message: int, wparam: int = 0, lparam: int = 0) -> bool:
        self._log("PostThreadMessageW", thread_id, message)
        with self.lock:
            q = self.queues.get(thread_id)
        if q is None:
            return False
        q.put((message, wparam, lparam))
        return True

    def allow_set_foreground(self) -> bool:
        self._log("AllowSetForegroundWindow")
        return True

    def press(self, text: str) -> bool:
        combo = to_win32(parse_hotkey(text))
        key = (combo.modifiers & ~MOD_NOREPEAT, combo.vk)
        with self.lock:
            match = [(tid, hid) for (tid, hid), c in self.owned.items() if c == key]
        for tid, hid in match:
            self.post_thread_message(tid, WM_HOTKEY, hid, 0)
        return bool(match)


@pytest.fixture
def api() -> FakeUser32:
    return FakeUser32(held={(0x0002 | 0x0001, ord("T"))})  # another program holds ctrl+alt+t


@pytest.fixture
def listener(api: FakeUser32):
    lst = Win32HotkeyListener(api)
    yield lst
    lst.stop()


def test_register_runs_on_the_loop_thread_and_dispatches(api: FakeUser32, listener: Win32HotkeyListener) -> None:
    fired: queue.Queue[tuple[str, str]] = queue.Queue()
    listener.register("ask_screen", "ctrl+alt+q", lambda: fired.put(("screen", threading.current_thread().name)))
    listener.register("ask_region", "ctrl+alt+r", lambda: fired.put(("region", threading.current_thread().name)))
    registers = [c for c in api.calls if c[0] == "RegisterHotKey"]
    assert [c[1] for c in registers] == ["hotkeys-win32", "hotkeys-win32"]  # never the caller's thread
    assert registers[0][2][1:] == (0x0002 | 0x0001 | MOD_NOREPEAT, ord("Q"))
    assert registers[0][2][0] != registers[1][2][0]  # distinct hotkey ids
    assert api.press("ctrl+alt+r") and api.press("ctrl+alt+q")
    assert fired.get(timeout=WAIT) == ("region", "hotkeys-win32")
    assert fired.get(timeout=WAIT) == ("screen", "hotkeys-win32")
    assert not api.press("ctrl+alt+w")  # nothing registered for it


def test_a_hotkey_keeps_the_foreground_right_before_the_callback_runs(api: FakeUser32,
                                                                    listener: Win32HotkeyListener) -> None:
    """Windows' foreground lock: AllowSetForegroundWindow on the loop thread, on WM_HOTKEY, before the callback
    (which only posts to the Tk thread, where the popup later calls focus_force)."""
    seen: queue.Queue[list[str]] = queue.Queue()
    listener.register("ask_screen", "ctrl+alt+q", lambda: seen.put([c[0] for c in api.calls]))
    assert api.press("ctrl+alt+q")
    calls = seen.get(timeout=WAIT)
    assert calls[-1] == "AllowSetForegroundWindow"
    assert [c[1] for c in api.calls if c[0] == "AllowSetForegroundWindow"] == ["hotkeys-win32"]
    listener.pause(True)
    api.press("ctrl+alt+q")
    listener.register("sync", "ctrl+alt+z", lambda: None)  # a round trip: the paused press was handled
    assert [c[0] for c in api.calls].count("AllowSetForegroundWindow") == 1  # a swallowed press takes nothing


def test_taken_combination_raises_and_the_rest_keep_working(api: FakeUser32, listener: Win32HotkeyListener) -> None:
    fired: queue.Queue[str] = queue.Queue()
    with pytest.raises(HotkeyTaken, match="ctrl\\+alt\\+t") as info:
        listener.register("ask_region", "ctrl+alt+t", lambda: fired.put("region"))
    assert info.value.name == "ask_region"
    listener.register("ask_screen", "ctrl+alt+q", lambda: fired.put("screen"))
    api.press("ctrl+alt+q")
    assert fired.get(timeout=WAIT) == "screen"
    with pytest.raises(HotkeyTaken, match="already bound here"):
        listener.register("other", "alt+ctrl+q", lambda: None)


def test_other_register_errors_are_unavailable() -> None:
    lst = Win32HotkeyListener(FakeUser32(fail_with=5))  # ERROR_ACCESS_DENIED
    try:
        with pytest.raises(HotkeyUnavailable, match="Windows error 5"):
            lst.register("ask_screen", "ctrl+alt+q", lambda: None)
    finally:
        lst.stop()


def test_reregister_and_unregister_release_on_the_loop_thread(api: FakeUser32, listener: Win32HotkeyListener) -> None:
    fired: queue.Queue[str] = queue.Queue()
    listener.register("ask_screen", "ctrl+alt+q", lambda: fired.put("old"))
    listener.register("ask_screen", "ctrl+alt+s", lambda: fired.put("new"))
    assert not api.press("ctrl+alt+q")  # the old combination was released
    api.press("ctrl+alt+s")
    assert fired.get(timeout=WAIT) == "new"
    listener.unregister("ask_screen")
    assert not api.press("ctrl+alt+s")
    unregisters = [c for c in api.calls if c[0] == "UnregisterHotKey"]
    assert len(unregisters) == 2 and {c[1] for c in unregisters} == {"hotkeys-win32"}


def test_pause_and_failing_callback(api: FakeUser32, listener: Win32HotkeyListener) -> None:
    fired: queue.Queue[str] = queue.Queue()

    def boom() -> None:
        fired.put("boom")
        raise RuntimeError("callback bug")

    listener.register("bad", "ctrl+alt+b", boom)
    listener.register("ask_screen", "ctrl+alt+q", lambda: fired.put("screen"))
    listener.pause(True)
    api.press("ctrl+alt+q")
    api.press("ctrl+alt+b")
    listener.register("sync", "ctrl+alt+z", lambda: None)  # a round trip: the loop has handled both presses
    assert listener._dispatch.swallowed == 2
    listener.pause(False)
    api.press("ctrl+alt+b")  # raises inside the loop: logged, the loop lives on
    api.press("ctrl+alt+q")
    assert fired.get(timeout=WAIT) == "boom"  # the paused presses produced nothing before it
    assert fired.get(timeout=WAIT) == "screen"


def test_callback_may_register_from_the_loop_thread(api: FakeUser32, listener: Win32HotkeyListener) -> None:
    fired: queue.Queue[str] = queue.Queue()
    listener.register("first", "ctrl+alt+q", lambda: listener.register("second", "ctrl+alt+w", lambda: fired.put("2")))
    api.press("ctrl+alt+q")
    listener.register("sync", "ctrl+alt+z", lambda: None)  # returns once the loop has run the callback above
    api.press("ctrl+alt+w")
    assert fired.get(timeout=WAIT) == "2"


def test_stop_posts_wm_quit_unregisters_and_joins(api: FakeUser32) -> None:
    lst = Win32HotkeyListener(api)
    lst.register("ask_screen", "ctrl+alt+q", lambda: None)
    lst.register("ask_region", "ctrl+alt+r", lambda: None)
    thread = lst._thread
    loop_tid = lst._thread_id
    assert thread is not None and thread.is_alive()
    lst.stop(timeout=WAIT)
    assert not thread.is_alive()
    assert ("PostThreadMessageW", "MainThread", (loop_tid, WM_QUIT)) in api.calls
    assert api.owned == {}  # both released...
    assert {c[1] for c in api.calls if c[0] == "UnregisterHotKey"} == {"hotkeys-win32"}  # ...by the loop thread
    with pytest.raises(HotkeyUnavailable, match="stopped"):
        lst.register("ask_screen", "ctrl+alt+q", lambda: None)
    lst.stop()  # twice is fine


def test_stop_before_start_is_harmless() -> None:
    api = FakeUser32()
    Win32HotkeyListener(api).stop()
    assert api.calls == []


def test_stop_from_a_callback(api: FakeUser32) -> None:
    lst = Win32HotkeyListener(api)
    done: queue.Queue[str] = queue.Queue()

    def quit_now() -> None:
        lst.stop()
        done.put("stopped")

    lst.register("quit", "ctrl+alt+x", quit_now)
    api.press("ctrl+alt+x")
    assert done.get(timeout=WAIT) == "stopped"
    assert lst._thread is not None
    lst._thread.join(WAIT)
    assert not lst._thread.is_alive() and api.owned == {}
