"""One daemon per user: a lock the operating system drops when the process dies.

Windows: a named mutex, `Global\\qwen-tray-<the user's SID>`; the kernel closes its
handle when the process ends, however it ends. The SID (from the process token)
makes the name the user's own: with a fixed name, a second account on the same
machine (fast user switching, `runas`) would open the first one's mutex and get
ERROR_ACCESS_DENIED instead of starting. `Global\\` makes it one per user across
sessions, like the per-user connection file. The installer's `AppMutex` builds
the same name (installer/windows/qwen-tray.iss, `DaemonMutex`). Elsewhere: an exclusive
`flock` on a file in the per-user runtime dir; the kernel releases it when the
process's descriptors close, so a daemon killed with `kill -9` never blocks the
next start (the file stays; its content is only a hint: the holder's pid).

The Windows calls sit behind `MutexApi` so the logic is tested with a fake.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Protocol

MUTEX_PREFIX = "Global\\qwen-tray-"
ERROR_ALREADY_EXISTS = 183
ERROR_ACCESS_DENIED = 5


def mutex_name(sid: str) -> str:
    """The daemon's mutex for the user with this SID (the .iss builds the same string)."""
    return MUTEX_PREFIX + sid


class AlreadyRunning(RuntimeError):
    """Another daemon of this user holds the lock; the message names its pid when known."""


class MutexApi(Protocol):
    def create(self, name: str) -> tuple[int, bool]:
        """Create or open the named mutex: (handle, it already existed). OSError(winerror) on failure."""
        ...

    def close(self, handle: int) -> None: ...

    def user_sid(self) -> str:
        """The string SID of this process's user (from its token)."""
        ...


class Win32Mutex:  # pragma: no cover - Windows only; tested through a fake MutexApi
    """CreateMutexW / CloseHandle and the token's SID, declared in ipc/win32.py."""

    def create(self, name: str) -> tuple[int, bool]:
        from qwen_tray_client import win32

        handle = win32.call("CreateMutexW", None, False, name)
        err = win32.last_error()
        if not handle:
            raise OSError(err, f"CreateMutexW({name!r}) failed")
        return int(handle), err == ERROR_ALREADY_EXISTS

    def close(self, handle: int) -> None:
        from qwen_tray_client import win32

        win32.call("CloseHandle", handle)

    def user_sid(self) -> str:
        from qwen_tray_client import win32

        return win32.current_user_sid()


class InstanceLock:
    """`acquire()` or raise AlreadyRunning; `release()` (also on garbage collection of the process)."""

    def __init__(self, lock_file: Path, *, windows: bool | None = None, mutex_api: MutexApi | None = None,
                 mutex_name: str | None = None) -> None:
        self.lock_file = Path(lock_file)
        self._windows = os.name == "nt" if windows is None else windows
        self._mutex_api = mutex_api
        self._mutex_name = mutex_name
        self._handle: int | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None or self._fd is not None

    def acquire(self) -> None:
        if self.held:
            return
        if self._windows:
            self._acquire_mutex()
        else:
            self._acquire_flock()

    def release(self) -> None:
        if self._handle is not None:
            assert self._mutex_api is not None
            self._mutex_api.close(self._handle)
            self._handle = None
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _acquire_mutex(self) -> None:
        if self._mutex_api is None:
            self._mutex_api = Win32Mutex()
        if self._mutex_name is None:
            self._mutex_name = mutex_name(self._mutex_api.user_sid())
        try:
            handle, existed = self._mutex_api.create(self._mutex_name)
        except OSError as exc:
            if exc.errno != ERROR_ACCESS_DENIED and getattr(exc, "winerror", None) != ERROR_ACCESS_DENIED:
                raise
            # Someone else's object under our name: nothing of ours runs, but we cannot start either.
            raise AlreadyRunning(f"qwen-tray cannot take its lock {self._mutex_name!r}: another account holds "
                                 "an object of that name") from exc
        if existed:
            self._mutex_api.close(handle)
            raise AlreadyRunning("qwen-tray is already running for this user (`qwen-tray status` shows it; "
                                 "`qwen-tray stop` stops it)")
        self._handle = handle

    def _acquire_flock(self) -> None:
        import fcntl

        self.lock_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 32, 0).decode("ascii").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise AlreadyRunning(f"qwen-tray is already running for this user{pid}: `qwen-tray status` shows it, "
                                 "`qwen-tray stop` stops it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
