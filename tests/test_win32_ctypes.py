"""The thin ctypes layers for Windows (user32 hotkeys, DPI, cursor), run against a fake WinDLL on Linux.

They cannot call Windows here, but they can be checked for what they pass: the PM_NOREMOVE peek, the -4
awareness context, GetLastError mapping, and how MSG/POINT are read back. What they declare comes from the one
table in ipc/win32.py (checked against the SDK's prototypes in test_win32_table.py).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import pytest

from qwen_tray import capture, dpi
from qwen_tray.hotkey.win32_backend import ERROR_HOTKEY_ALREADY_REGISTERED, WM_HOTKEY, CtypesUser32
from qwen_tray_client import win32


class FakeFn:
    """A foreign function: records argtypes/restype set on it and the calls made."""

    def __init__(self, impl: Callable[..., Any]) -> None:
        self.impl = impl
        self.argtypes: list[Any] | None = None
        self.restype: Any = None
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        return self.impl(*args)


class FakeDll:
    def __init__(self, **functions: Callable[..., Any]) -> None:
        self.fns = {name: FakeFn(impl) for name, impl in functions.items()}

    def __getitem__(self, name: str) -> FakeFn:
        try:
            return self.fns[name]
        except KeyError:
            raise AttributeError(name) from None

    __getattr__ = __getitem__


@pytest.fixture
def last_error(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    box = [0]
    monkeypatch.setattr(ctypes, "get_last_error", lambda: box[0], raising=False)
    return box


def _install(monkeypatch: pytest.MonkeyPatch, dlls: dict[str, FakeDll]) -> list[tuple[str, dict[str, Any]]]:
    opened: list[tuple[str, dict[str, Any]]] = []

    def windll(name: str, **kwargs: Any) -> FakeDll:
        opened.append((name, kwargs))
        if name not in dlls:
            raise OSError(f"no {name}.dll")
        return dlls[name]

    monkeypatch.setattr(ctypes, "WinDLL", windll, raising=False)
    win32._reset_for_tests()
    return opened


@pytest.fixture(autouse=True)
def _fresh_table() -> Any:
    win32._reset_for_tests()
    yield
    win32._reset_for_tests()


def test_user32_hotkey_calls(monkeypatch: pytest.MonkeyPatch, last_error: list[int]) -> None:
    queue_msgs: list[tuple[int, int, int]] = [(WM_HOTKEY, 7, 0x00510003)]

    def get_message(pmsg: Any, hwnd: Any, lo: int, hi: int) -> int:
        if not queue_msgs:
            return 0  # WM_QUIT
        msg = pmsg._obj
        msg.message, msg.wParam, msg.lParam = queue_msgs.pop(0)
        return 1

    def register(hwnd: Any, hid: int, mods: int, vk: int) -> int:
        if vk == ord("T"):
            last_error[0] = ERROR_HOTKEY_ALREADY_REGISTERED
            return 0
        return 1

    user32 = FakeDll(
        RegisterHotKey=register, UnregisterHotKey=lambda hwnd, hid: 1, GetMessageW=get_message,
        PeekMessageW=lambda *a: 0, PostThreadMessageW=lambda *a: 1, AllowSetForegroundWindow=lambda pid: 1,
    )  # fmt: skip
    kernel32 = FakeDll(GetCurrentThreadId=lambda: 4242, GetCurrentProcessId=lambda: 77)
    opened = _install(monkeypatch, {"user32": user32, "kernel32": kernel32})
    api = CtypesUser32()
    assert all(kw == {"use_last_error": True} for _, kw in opened)  # GetLastError is captured per call
    assert user32.RegisterHotKey.argtypes == win32.CFUNCTIONS["RegisterHotKey"][1]
    assert user32.GetMessageW.restype is ctypes.c_int32  # signed: -1 (error) is not read as True
    assert api.allow_set_foreground() and user32.AllowSetForegroundWindow.calls == [(77,)]  # our process only

    assert api.current_thread_id() == 4242
    api.ensure_message_queue()
    assert user32.PeekMessageW.calls[0][1:] == (None, 0, 0, 0)  # NULL hwnd, all messages, PM_NOREMOVE
    assert api.register_hotkey(1, 0x4003, ord("Q")) == 0
    assert user32.RegisterHotKey.calls[-1] == (None, 1, 0x4003, ord("Q"))  # thread-bound: hwnd NULL
    assert api.register_hotkey(2, 0x4003, ord("T")) == ERROR_HOTKEY_ALREADY_REGISTERED
    assert api.unregister_hotkey(1) is True
    assert api.get_message() == (WM_HOTKEY, 7, 0x00510003)
    assert api.get_message() is None
    assert api.post_thread_message(4242, 0x12) is True
    assert user32.PostThreadMessageW.calls[-1] == (4242, 0x12, 0, 0)


def test_user32_get_message_error(monkeypatch: pytest.MonkeyPatch, last_error: list[int]) -> None:
    user32 = FakeDll(
        RegisterHotKey=lambda *a: 1, UnregisterHotKey=lambda *a: 1, GetMessageW=lambda *a: -1,
        PeekMessageW=lambda *a: 0, PostThreadMessageW=lambda *a: 1, AllowSetForegroundWindow=lambda pid: 1,
    )  # fmt: skip
    _install(monkeypatch, {"user32": user32,
                           "kernel32": FakeDll(GetCurrentThreadId=lambda: 1, GetCurrentProcessId=lambda: 1)})
    last_error[0] = 1400  # ERROR_INVALID_WINDOW_HANDLE
    with pytest.raises(OSError, match="GetMessageW"):
        CtypesUser32().get_message()


def test_dpi_ctypes_per_monitor_v2(monkeypatch: pytest.MonkeyPatch, last_error: list[int]) -> None:
    user32 = FakeDll(SetProcessDpiAwarenessContext=lambda ctx: 1, SetProcessDPIAware=lambda: 1)
    _install(monkeypatch, {"user32": user32})
    api = dpi.CtypesDpi()
    assert api.set_context_per_monitor_v2() == 0
    (ctx,) = user32.SetProcessDpiAwarenessContext.calls[0]
    assert ctx.value == ctypes.c_void_p(-4).value  # DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2
    assert api.set_awareness_per_monitor() is None  # shcore.dll missing (Windows 7)
    assert api.set_dpi_aware() == 0


def test_dpi_ctypes_fallbacks(monkeypatch: pytest.MonkeyPatch, last_error: list[int]) -> None:
    user32 = FakeDll(SetProcessDPIAware=lambda: 1)  # no SetProcessDpiAwarenessContext (Windows 8.1)
    shcore = FakeDll(SetProcessDpiAwareness=lambda level: -2147024891)  # E_ACCESSDENIED as a signed HRESULT
    _install(monkeypatch, {"user32": user32, "shcore": shcore})
    api = dpi.CtypesDpi()
    assert api.set_context_per_monitor_v2() is None
    assert api.set_awareness_per_monitor() == dpi.E_ACCESSDENIED
    assert shcore.SetProcessDpiAwareness.calls == [(2,)]  # PROCESS_PER_MONITOR_DPI_AWARE
    dpi._reset_for_tests()
    try:
        assert dpi.set_dpi_awareness(api, platform="win32") == "already-set"
    finally:
        dpi._reset_for_tests()


def test_win32_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    def get_cursor_pos(ppoint: Any) -> int:
        ppoint._obj.x, ppoint._obj.y = -1500, 300  # a monitor left of the primary
        return 1

    class WinDll:
        user32 = FakeDll(GetCursorPos=get_cursor_pos)

    _install(monkeypatch, {"user32": WinDll.user32})
    assert capture._win32_cursor() == (-1500, 300)
    assert WinDll.user32.GetCursorPos.argtypes == (ctypes.POINTER(win32.POINT),)
    win32._reset_for_tests()
    _install(monkeypatch, {"user32": FakeDll(GetCursorPos=lambda p: 0)})
    with pytest.raises(capture.CaptureError, match="GetCursorPos"):
        capture._win32_cursor()
