"""The connection file: how a local client finds the daemon and proves it is the same user.

Like Jupyter's kernel connection file: a small JSON document with the endpoint
and the CURVE keys, readable by the user alone. Whoever can read it may talk to
the daemon; whoever cannot gets no reply (the CURVE handshake fails).

    {"protocol": "qwen-tray/1", "endpoint": "tcp://127.0.0.1:40123",
     "server_public_key": "<Z85>", "client_public_key": "<Z85>", "client_secret_key": "<Z85>",
     "pid": 1234, "max_bytes": 33554432}

Written atomically at start (temp file restricted to the user first, then the
secret, then a rename), removed at stop. `QWEN_TRAY_CONNECTION` overrides the
path for both sides. Imports nothing from `daemon/` (the client uses it).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .protocol import PROTOCOL

ENV_VAR = "QWEN_TRAY_CONNECTION"
APP = "qwen-tray"
REQUIRED_KEYS = ("protocol", "endpoint", "server_public_key", "client_public_key", "client_secret_key", "pid")


class ConnectionFileError(RuntimeError):
    """The connection file is missing, unreadable or not ours; the message says what to do."""


class DaemonNotRunning(ConnectionFileError):
    """No daemon: no connection file, or the process that wrote it is gone."""


@dataclass(frozen=True)
class ConnectionInfo:
    endpoint: str
    server_public_key: str
    client_public_key: str
    client_secret_key: str
    pid: int
    max_bytes: int = 0  # the daemon's per-image byte limit (0 = not stated)
    protocol: str = PROTOCOL
    path: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "endpoint": self.endpoint,
            "server_public_key": self.server_public_key,
            "client_public_key": self.client_public_key,
            "client_secret_key": self.client_secret_key,
            "pid": self.pid,
            "max_bytes": self.max_bytes,
        }


def default_path(dirs: Any = None) -> Path:
    """Where the daemon writes the file: `$QWEN_TRAY_CONNECTION`, else connection.json in the runtime dir.

    The same rule as `qwen_tray.paths.runtime_dir` (a test keeps them equal, for Windows' rules too);
    repeated here because a client must not need the daemon package. `dirs`: a platformdirs object.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    try:
        import platformdirs
    except ImportError:
        raise ConnectionFileError(
            f"cannot locate the connection file without the platformdirs package: set {ENV_VAR} "
            "to its path (`qwen-tray config` prints it)"
        ) from None
    from platformdirs.windows import Windows

    dirs = dirs if dirs is not None else platformdirs.PlatformDirs(APP, False)
    if isinstance(dirs, Windows):  # not %LOCALAPPDATA%\\Temp: Storage Sense empties it under a live daemon
        runtime = Path(dirs.user_data_dir) / "run"
    elif not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(dirs.user_state_dir) / "run"
    else:
        runtime = Path(dirs.user_runtime_dir)
    return runtime / "connection.json"


# ---------------------------------------------------------------- access control


class AclApi(Protocol):
    """The two Windows steps behind the user-only ACL (a fake implements this in tests)."""

    def user_sid(self) -> str:
        """The string SID of the user this process runs as, from the process token."""
        ...

    def apply_sddl(self, path: str, sddl: str) -> None:
        """Replace the file's DACL with the one in `sddl` (OSError on failure)."""
        ...


class Win32Acl:  # pragma: no cover - Windows only; its calls are declared (and checked) in ipc/win32.py
    """advapi32 through ctypes: the token's SID, and SetNamedSecurityInfoW with a DACL parsed from SDDL."""

    def user_sid(self) -> str:
        from . import win32

        return win32.current_user_sid()

    def apply_sddl(self, path: str, sddl: str) -> None:
        import ctypes

        from . import win32

        sd = win32.PVOID()
        if not win32.call("ConvertStringSecurityDescriptorToSecurityDescriptorW", sddl, win32.SDDL_REVISION_1,
                          ctypes.byref(sd), None):
            raise OSError(win32.last_error(), f"cannot parse the security descriptor {sddl!r}")
        try:
            present, defaulted, dacl = win32.BOOL(), win32.BOOL(), win32.PVOID()
            if not win32.call("GetSecurityDescriptorDacl", sd, ctypes.byref(present), ctypes.byref(dacl),
                              ctypes.byref(defaulted)):
                raise OSError(win32.last_error(), "GetSecurityDescriptorDacl failed")
            err = win32.call("SetNamedSecurityInfoW", path, win32.SE_FILE_OBJECT,
                             win32.DACL_SECURITY_INFORMATION | win32.PROTECTED_DACL_SECURITY_INFORMATION,
                             None, None, dacl, None)
            if err:
                raise OSError(err, f"SetNamedSecurityInfoW failed for {path}")
        finally:
            win32.call("LocalFree", sd)


def user_only_sddl(sid: str) -> str:
    """The DACL as SDDL: protected (nothing inherited from the folder), one entry: full access for `sid`.

    The same result as jupyter_core's `win32_restrict_file_to_user`, written as SDDL so it can be read and tested.
    """
    if not re.fullmatch(r"S-1-\d+(-\d+)+", sid):
        raise ConnectionFileError(f"cannot restrict the connection file: {sid!r} is not a SID")
    return f"D:P(A;;FA;;;{sid})"


def _windows_grant_user_only(path: Path, acl: AclApi | None = None) -> None:
    """Replace the file's ACL with one entry for the user of this process's token (not %USERNAME%)."""
    api: AclApi = acl if acl is not None else Win32Acl()
    try:
        sddl = user_only_sddl(api.user_sid())
        api.apply_sddl(str(path), sddl)
    except OSError as exc:
        raise ConnectionFileError(f"cannot restrict {path} to your user ({exc}); nothing was written") from exc


def restrict_to_user(path: Path, *, windows: bool | None = None, acl: AclApi | None = None) -> None:
    """Make `path` readable and writable by the current user alone: 0600 on POSIX, a one-entry ACL on Windows."""
    if os.name == "nt" if windows is None else windows:
        _windows_grant_user_only(path, acl)
    else:
        os.chmod(path, 0o600)


# ---------------------------------------------------------------- write / read / remove


def write_connection_file(path: Path, info: ConnectionInfo,
                          restrict: Callable[[Path], None] = restrict_to_user) -> Path:
    """Atomically (re)place the file: a temp file in the same folder, restricted, filled, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=".connection-", suffix=".tmp", dir=path.parent)  # 0600 on POSIX
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            restrict(tmp)  # before the secret key is in it
            json.dump(info.as_dict(), f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_connection_file(path: Path | None = None) -> ConnectionInfo:
    """Read and check the file; DaemonNotRunning when it is absent or its daemon has exited."""
    path = Path(path) if path is not None else default_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DaemonNotRunning(
            f"qwen-tray is not running (no connection file at {path}): start it with `qwen-tray run`"
        ) from None
    except PermissionError:
        raise ConnectionFileError(f"cannot read {path}: it belongs to another user") from None
    except (OSError, ValueError) as exc:
        raise ConnectionFileError(f"{path} is not a qwen-tray connection file ({exc})") from None
    if not isinstance(data, dict) or (missing := [k for k in REQUIRED_KEYS if k not in data]):
        raise ConnectionFileError(f"{path} is not a qwen-tray connection file (missing {', '.join(missing)})")
    if data["protocol"] != PROTOCOL:
        raise ConnectionFileError(
            f"{path} is for protocol {data['protocol']!r}, this client speaks {PROTOCOL!r}: update one of them"
        )
    pid = data["pid"]
    if not isinstance(pid, int) or not pid_alive(pid):
        raise DaemonNotRunning(
            f"qwen-tray is not running (its connection file {path} is left from process {pid}, which has exited): "
            "start it with `qwen-tray run`"
        )
    return ConnectionInfo(
        endpoint=str(data["endpoint"]),
        server_public_key=str(data["server_public_key"]),
        client_public_key=str(data["client_public_key"]),
        client_secret_key=str(data["client_secret_key"]),
        pid=pid,
        max_bytes=int(data.get("max_bytes") or 0),
        protocol=data["protocol"],
        path=str(path),
    )


def remove_connection_file(path: Path, pid: int) -> bool:
    """Remove the file if process `pid` wrote it (never a newer daemon's file). True when removed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("pid") != pid:
        return False
    path.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------- process check


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (a zombie counts as alive until reaped)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    return True


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows only; see tests/test_win32_ctypes.py
    """Open the process and ask whether it has ended (WaitForSingleObject with no wait).

    Not GetExitCodeProcess: a process that exited with code 259 would read as STILL_ACTIVE.
    """
    from . import win32

    handle = win32.call("OpenProcess", win32.PROCESS_QUERY_LIMITED_INFORMATION | win32.SYNCHRONIZE, False, pid)
    if not handle:
        return win32.last_error() == win32.ERROR_ACCESS_DENIED  # it exists, it is someone else's
    try:
        return int(win32.call("WaitForSingleObject", handle, 0)) == win32.WAIT_TIMEOUT
    finally:
        win32.call("CloseHandle", handle)
