"""Windows global hotkeys: user32 RegisterHotKey and a GetMessageW loop on the listener's own thread.

Why RegisterHotKey: it is what PowerToys, ShareX and AutoHotkey use. The system delivers WM_HOTKEY to the
registering thread's message queue; there is no low-level keyboard hook, so nothing for Windows to silently
drop when Python is busy (the ``keyboard`` package's failure mode).

RegisterHotKey binds a hotkey to the *calling* thread, so every register/unregister runs ON the loop thread:
callers put a command in a queue and wake the loop with PostThreadMessageW(WM_APP + 1); the loop runs it and
hands back the result, so ``register`` still raises HotkeyTaken synchronously. ``stop`` posts WM_QUIT, the loop
unregisters everything (on its own thread) and ends. While idle the thread sleeps in GetMessageW: no polling.

Focus: on WM_HOTKEY the loop calls AllowSetForegroundWindow for our own process before the callback (see
``_keep_foreground_right``), so the popup that opens a moment later may take the foreground.

All of user32/kernel32 is behind ``User32Api`` so the real logic is tested on Linux with a fake.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from qwen_tray.hotkey.base import Callback, Dispatcher, HotkeyTaken, HotkeyUnavailable, PausableListener
from qwen_tray.hotkey.parse import Hotkey, as_hotkey, to_win32

log = logging.getLogger(__name__)

WM_QUIT = 0x0012
WM_HOTKEY = 0x0312
WM_APP = 0x8000
WM_RUN_COMMANDS = WM_APP + 1  # "there are commands in your queue"
ERROR_HOTKEY_ALREADY_REGISTERED = 1409
_COMMAND_TIMEOUT = 10.0


class User32Api(Protocol):
    """The few user32/kernel32 calls the listener makes, in Python terms (a fake implements this in tests)."""

    def current_thread_id(self) -> int:
        """GetCurrentThreadId()."""

    def ensure_message_queue(self) -> None:
        """Make Windows create this thread's message queue (PeekMessageW), so PostThreadMessageW can reach it."""

    def register_hotkey(self, hotkey_id: int, modifiers: int, vk: int) -> int:
        """RegisterHotKey(NULL, id, modifiers, vk) on the calling thread: 0 on success, else GetLastError()."""

    def unregister_hotkey(self, hotkey_id: int) -> bool:
        """UnregisterHotKey(NULL, id) on the calling thread."""

    def get_message(self) -> tuple[int, int, int] | None:
        """GetMessageW: block until a message arrives; (message, wParam, lParam), or None for WM_QUIT."""

    def post_thread_message(self, thread_id: int, message: int, wparam: int = 0, lparam: int = 0) -> bool:
        """PostThreadMessageW."""

    def allow_set_foreground(self) -> bool:
        """AllowSetForegroundWindow(our own process id), called while WM_HOTKEY is the last input."""


class CtypesUser32:
    """The real User32Api over the declared functions in ipc/win32.py (Windows only)."""

    def __init__(self) -> None:
        import ctypes

        from qwen_tray_client import win32

        self._ctypes = ctypes
        self._w = win32
        for name in ("RegisterHotKey", "UnregisterHotKey", "GetMessageW", "PeekMessageW", "PostThreadMessageW",
                     "GetCurrentThreadId", "GetCurrentProcessId", "AllowSetForegroundWindow"):
            if win32.fn(name) is None:
                raise HotkeyUnavailable(f"user32/kernel32 has no {name}")

    def current_thread_id(self) -> int:
        return int(self._w.call("GetCurrentThreadId"))

    def ensure_message_queue(self) -> None:
        msg = self._w.MSG()
        self._w.call("PeekMessageW", self._ctypes.byref(msg), None, 0, 0, 0)  # PM_NOREMOVE

    def register_hotkey(self, hotkey_id: int, modifiers: int, vk: int) -> int:
        if self._w.call("RegisterHotKey", None, hotkey_id, modifiers, vk):
            return 0
        return self._w.last_error() or -1

    def unregister_hotkey(self, hotkey_id: int) -> bool:
        return bool(self._w.call("UnregisterHotKey", None, hotkey_id))

    def get_message(self) -> tuple[int, int, int] | None:
        msg = self._w.MSG()
        result = self._w.call("GetMessageW", self._ctypes.byref(msg), None, 0, 0)
        if result == -1:
            raise OSError(self._w.last_error(), "GetMessageW failed")
        if result == 0:
            return None
        return int(msg.message), int(msg.wParam), int(msg.lParam)

    def post_thread_message(self, thread_id: int, message: int, wparam: int = 0, lparam: int = 0) -> bool:
        return bool(self._w.call("PostThreadMessageW", thread_id, message, wparam, lparam))

    def allow_set_foreground(self) -> bool:
        return bool(self._w.call("AllowSetForegroundWindow", self._w.call("GetCurrentProcessId")))


@dataclass
class _Command:
    """A function to run on the loop thread, and where its result (or exception) goes."""

    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class Win32HotkeyListener(PausableListener):
    """RegisterHotKey-based listener. ``register`` starts the loop thread if it is not running yet."""

    def __init__(self, api: User32Api | None = None) -> None:
        self._api: User32Api = api if api is not None else CtypesUser32()
        self._dispatch = Dispatcher()
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._ids = itertools.count(1)  # application hotkey ids: 0x0000..0xBFFF
        self._by_name: dict[str, tuple[int, Hotkey]] = {}  # touched on the loop thread only
        self._names_by_id: dict[int, str] = {}
        self._thread: threading.Thread | None = None
        self._thread_id = 0
        self._ready = threading.Event()
        self._start_lock = threading.Lock()
        self._stopped = False

    # -- HotkeyListener --------------------------------------------------------------------------------------
    def start(self) -> None:
        with self._start_lock:
            if self._stopped:
                raise HotkeyUnavailable("the hotkey listener is stopped")
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="hotkeys-win32", daemon=True)
            self._thread.start()
        if not self._ready.wait(_COMMAND_TIMEOUT):
            raise HotkeyUnavailable("the hotkey message loop did not start")

    def register(self, name: str, hotkey: Hotkey | str, callback: Callback) -> None:
        hk = as_hotkey(hotkey)
        self.start()
        self._run_on_loop(lambda: self._register_here(name, hk))
        self._dispatch.set(name, callback)
        log.info("hotkey %s registered for %s", hk, name)

    def unregister(self, name: str) -> None:
        self._dispatch.remove(name)
        if self._thread is not None and not self._stopped:
            self._run_on_loop(lambda: self._unregister_here(name))

    def stop(self, timeout: float = 5.0) -> None:
        with self._start_lock:
            self._stopped = True
            thread = self._thread
        if thread is None:
            return
        if thread.is_alive() and not self._api.post_thread_message(self._thread_id, WM_QUIT):
            log.warning("could not post WM_QUIT to the hotkey thread")
        if thread is threading.current_thread():  # stop() from a hotkey callback: the loop ends after it
            return
        thread.join(timeout)
        if thread.is_alive():
            log.warning("the hotkey message loop did not stop within %.1f s", timeout)

    # -- marshalling to the loop thread ----------------------------------------------------------------------
    def _run_on_loop(self, fn: Callable[[], Any]) -> Any:
        if self._stopped:
            raise HotkeyUnavailable("the hotkey listener is stopped")
        if threading.current_thread() is self._thread:  # e.g. a callback re-registering: already on the loop
            return fn()
        cmd = _Command(fn)
        self._commands.put(cmd)
        if not self._api.post_thread_message(self._thread_id, WM_RUN_COMMANDS):
            raise HotkeyUnavailable("the hotkey message loop is not running")
        if not cmd.done.wait(_COMMAND_TIMEOUT):
            raise HotkeyUnavailable("the hotkey message loop did not answer")
        if cmd.error is not None:
            raise cmd.error
        return cmd.result

    def _run_commands(self) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                cmd.result = cmd.fn()
            except BaseException as exc:  # handed back to the caller's thread, which raises it
                cmd.error = exc
            finally:
                cmd.done.set()

    # -- on the loop thread ----------------------------------------------------------------------------------
    def _register_here(self, name: str, hk: Hotkey) -> None:
        for other, (_, other_hk) in self._by_name.items():
            if other != name and other_hk == hk:
                raise HotkeyTaken(name, hk, f"it is already bound here to {other!r}")
        self._unregister_here(name)
        combo = to_win32(hk)
        hotkey_id = next(self._ids)
        error = self._api.register_hotkey(hotkey_id, combo.modifiers, combo.vk)
        if error == ERROR_HOTKEY_ALREADY_REGISTERED:
            raise HotkeyTaken(name, hk, "RegisterHotKey: ERROR_HOTKEY_ALREADY_REGISTERED")
        if error:
            raise HotkeyUnavailable(f"RegisterHotKey failed for {hk} (Windows error {error})")
        self._by_name[name] = (hotkey_id, hk)
        self._names_by_id[hotkey_id] = name

    def _unregister_here(self, name: str) -> None:
        entry = self._by_name.pop(name, None)
        if entry is not None:
            self._names_by_id.pop(entry[0], None)
            self._api.unregister_hotkey(entry[0])

    def _loop(self) -> None:
        api = self._api
        try:
            self._thread_id = api.current_thread_id()
            api.ensure_message_queue()
        finally:
            self._ready.set()
        try:
            while True:
                msg = api.get_message()
                if msg is None:  # WM_QUIT
                    break
                message, wparam, _ = msg
                if message == WM_HOTKEY:
                    name = self._names_by_id.get(wparam)
                    if name is not None:
                        self._keep_foreground_right()
                        self._dispatch.fire(name)
                elif message == WM_RUN_COMMANDS:
                    self._run_commands()
        except Exception:
            log.exception("the hotkey message loop failed; hotkeys are off")
        finally:
            for name in list(self._by_name):
                self._unregister_here(name)
            self._fail_pending()  # anyone still waiting gets "stopped", never a late registration

    def _keep_foreground_right(self) -> None:
        """Windows' foreground lock: only a process that received the last input may take the foreground.

        WM_HOTKEY is that input, but the popup appears ~200 ms later on the Tk thread (after the capture).
        AllowSetForegroundWindow(own pid) right now keeps the right until the user's next input elsewhere, so
        the popup's focus_force takes the foreground instead of flashing its taskbar button.
        """
        if self._dispatch.paused:
            return
        try:
            if not self._api.allow_set_foreground():
                log.debug("AllowSetForegroundWindow refused")
        except Exception:
            log.debug("AllowSetForegroundWindow failed", exc_info=True)

    def _fail_pending(self) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            cmd.error = HotkeyUnavailable("the hotkey listener is stopped")
            cmd.done.set()
