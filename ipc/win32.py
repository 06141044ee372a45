"""Every Win32 function qwen-tray calls, declared once (like mss's ``CFUNCTIONS`` in mss/windows.py).

Why one table: ctypes' defaults are wrong for Win32 (every argument and result is a C ``int``, so a 64-bit
HANDLE is cut to 32 bits), and ``ctypes.windll`` is shared with every other library in the process, which may
set other argtypes on the same function objects. Here each DLL is loaded once with our own ``WinDLL``
(``use_last_error=True``: GetLastError is captured per call), and every function gets its argtypes/restype
from the table below before first use. ``tests/test_win32_table.py`` checks each row against the prototypes
in the Windows SDK headers (mingw-w64's copy): the size, signedness and kind of every argument and result.

Types are fixed-width on purpose (``c_uint32`` rather than ``wintypes.DWORD``): on Windows they are the same
types, and on Linux (where the tests run) they keep Windows' LLP64 sizes, so the check means something.

It lives in ``ipc/`` because the connection file's code (which a client uses without the daemon package) needs
it too; ``daemon/`` imports it from here.

Functions missing from an older Windows (SetProcessDpiAwarenessContext on 8.1, shcore on 7) are ``None``.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

# -- Windows' types, LLP64 -----------------------------------------------------------------------------------
BOOL = ctypes.c_int32
INT = ctypes.c_int32
UINT = ctypes.c_uint32
DWORD = ctypes.c_uint32
LONG = ctypes.c_int32
HRESULT = ctypes.c_int32
ENUM = ctypes.c_uint32  # a C enum with no negative member (TOKEN_INFORMATION_CLASS, SE_OBJECT_TYPE...)
HANDLE = ctypes.c_void_p
HWND = ctypes.c_void_p
HMONITOR = ctypes.c_void_p
HLOCAL = ctypes.c_void_p
PVOID = ctypes.c_void_p  # also PSID, PSECURITY_DESCRIPTOR, PACL, LPSECURITY_ATTRIBUTES (opaque here)
WPARAM = ctypes.c_size_t  # UINT_PTR
LPARAM = ctypes.c_ssize_t  # LONG_PTR
LPCWSTR = ctypes.c_wchar_p
LPWSTR = ctypes.c_wchar_p


class POINT(ctypes.Structure):
    _fields_ = [("x", LONG), ("y", LONG)]


class RECT(ctypes.Structure):
    _fields_ = [("left", LONG), ("top", LONG), ("right", LONG), ("bottom", LONG)]


class MONITORINFO(ctypes.Structure):
    _fields_ = [("cbSize", DWORD), ("rcMonitor", RECT), ("rcWork", RECT), ("dwFlags", DWORD)]


class MSG(ctypes.Structure):
    _fields_ = [("hwnd", HWND), ("message", UINT), ("wParam", WPARAM), ("lParam", LPARAM), ("time", DWORD),
                ("pt", POINT)]


def _p(t: Any) -> Any:
    return ctypes.POINTER(t)


# -- constants the callers use ------------------------------------------------------------------------------
SYNCHRONIZE = 0x00100000
WAIT_TIMEOUT = 258
WAIT_OBJECT_0 = 0
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
ERROR_ACCESS_DENIED = 5
ERROR_ALREADY_EXISTS = 183
ERROR_INSUFFICIENT_BUFFER = 122
TOKEN_QUERY = 0x0008
TOKEN_USER_CLASS = 1  # TOKEN_INFORMATION_CLASS.TokenUser
SE_FILE_OBJECT = 1
DACL_SECURITY_INFORMATION = 0x00000004
PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000
SDDL_REVISION_1 = 1
MONITOR_DEFAULTTONEAREST = 2
MDT_EFFECTIVE_DPI = 0
MB_OK, MB_ICONERROR, MB_SETFOREGROUND, MB_TOPMOST = 0x0, 0x10, 0x10000, 0x40000

# name: (dll, argtypes, restype). Sorted by DLL, then name. Every ctypes call in the project goes through here.
CFUNCTIONS: dict[str, tuple[str, tuple[Any, ...], Any]] = {
    # advapi32: the connection file's ACL (ipc/connection.py) and the mutex name's SID (daemon/instance.py)
    "ConvertSidToStringSidW": ("advapi32", (PVOID, _p(LPWSTR)), BOOL),
    "ConvertStringSecurityDescriptorToSecurityDescriptorW":
        ("advapi32", (LPCWSTR, DWORD, _p(PVOID), _p(ctypes.c_uint32)), BOOL),
    "GetSecurityDescriptorDacl": ("advapi32", (PVOID, _p(BOOL), _p(PVOID), _p(BOOL)), BOOL),
    "GetTokenInformation": ("advapi32", (HANDLE, ENUM, PVOID, DWORD, _p(DWORD)), BOOL),
    "OpenProcessToken": ("advapi32", (HANDLE, DWORD, _p(HANDLE)), BOOL),
    "SetNamedSecurityInfoW": ("advapi32", (LPWSTR, ENUM, DWORD, PVOID, PVOID, PVOID, PVOID), DWORD),
    # kernel32
    "CloseHandle": ("kernel32", (HANDLE,), BOOL),
    "CreateMutexW": ("kernel32", (PVOID, BOOL, LPCWSTR), HANDLE),
    "GetCurrentProcess": ("kernel32", (), HANDLE),
    "GetCurrentProcessId": ("kernel32", (), DWORD),
    "GetCurrentThreadId": ("kernel32", (), DWORD),
    "LocalFree": ("kernel32", (HLOCAL,), HLOCAL),
    "OpenProcess": ("kernel32", (DWORD, BOOL, DWORD), HANDLE),
    "WaitForSingleObject": ("kernel32", (HANDLE, DWORD), DWORD),
    # shcore (Windows 8.1+)
    "GetDpiForMonitor": ("shcore", (HMONITOR, ENUM, _p(UINT), _p(UINT)), HRESULT),
    "SetProcessDpiAwareness": ("shcore", (ENUM,), HRESULT),
    # user32
    "AllowSetForegroundWindow": ("user32", (DWORD,), BOOL),
    "GetCursorPos": ("user32", (_p(POINT),), BOOL),
    "GetMessageW": ("user32", (_p(MSG), HWND, UINT, UINT), BOOL),  # BOOL that is -1 on error
    "GetMonitorInfoW": ("user32", (HMONITOR, _p(MONITORINFO)), BOOL),
    "MessageBoxW": ("user32", (HWND, LPCWSTR, LPCWSTR, UINT), INT),
    "MonitorFromPoint": ("user32", (POINT, DWORD), HMONITOR),
    "PeekMessageW": ("user32", (_p(MSG), HWND, UINT, UINT, UINT), BOOL),
    "PostThreadMessageW": ("user32", (DWORD, UINT, WPARAM, LPARAM), BOOL),
    "RegisterHotKey": ("user32", (HWND, INT, UINT, UINT), BOOL),
    "SetProcessDPIAware": ("user32", (), BOOL),
    "SetProcessDpiAwarenessContext": ("user32", (HANDLE,), BOOL),  # DPI_AWARENESS_CONTEXT is a HANDLE
    "UnregisterHotKey": ("user32", (HWND, INT), BOOL),
}

_lock = threading.Lock()
_dlls: dict[str, Any] = {}
_functions: dict[str, Any] = {}


def _dll(name: str) -> Any:
    if name not in _dlls:
        _dlls[name] = ctypes.WinDLL(name, use_last_error=True)  # type: ignore[attr-defined]
    return _dlls[name]


def fn(name: str) -> Any:
    """The declared function ``name`` (argtypes/restype set), or None when this Windows lacks it or its DLL."""
    with _lock:
        if name in _functions:
            return _functions[name]
        dll_name, argtypes, restype = CFUNCTIONS[name]
        try:
            # Our own function object (not the shared attribute), so nobody else's argtypes can reach it.
            f = _dll(dll_name)[name]
        except (OSError, AttributeError):
            f = None
        if f is not None:
            f.argtypes = argtypes
            f.restype = restype
        _functions[name] = f
        return f


def call(name: str, *args: Any) -> Any:
    """Call a declared function; OSError when it does not exist on this Windows."""
    f = fn(name)
    if f is None:
        raise OSError(f"{name} is not available on this version of Windows")
    return f(*args)


def last_error() -> int:
    return int(ctypes.get_last_error())  # type: ignore[attr-defined]


def _reset_for_tests() -> None:
    with _lock:
        _dlls.clear()
        _functions.clear()


# -- small helpers over the table (Windows only) -------------------------------------------------------------
def current_user_sid() -> str:
    """The string SID of the user this process runs as, from its token (not from %USERNAME%)."""
    token = HANDLE()
    if not call("OpenProcessToken", call("GetCurrentProcess"), TOKEN_QUERY, ctypes.byref(token)):
        raise OSError(last_error(), "OpenProcessToken failed")
    try:
        size = DWORD(0)
        call("GetTokenInformation", token, TOKEN_USER_CLASS, None, 0, ctypes.byref(size))
        buf = ctypes.create_string_buffer(max(int(size.value), 1))
        if not call("GetTokenInformation", token, TOKEN_USER_CLASS, buf, size, ctypes.byref(size)):
            raise OSError(last_error(), "GetTokenInformation(TokenUser) failed")
        psid = ctypes.cast(buf, _p(PVOID))[0]  # TOKEN_USER.User.Sid: the first field
        text = LPWSTR()
        if not call("ConvertSidToStringSidW", psid, ctypes.byref(text)):
            raise OSError(last_error(), "ConvertSidToStringSidW failed")
        try:
            return str(text.value)
        finally:
            call("LocalFree", ctypes.cast(text, PVOID))
    finally:
        call("CloseHandle", token)
