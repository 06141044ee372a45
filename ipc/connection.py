"""The connection file: how a local client finds the daemon and proves it is the same user.

Like Jupyter's kernel connection file: a small JSON document with the endpoint
and the CURVE keys, readable by the user alone. Whoever can read it may talk to
the daemon; whoever cannot gets no reply (the CURVE handshake fails).

    {"protocol": "qwen-tray/1", "endpoint": "tcp://127.0.0.1:40123",
     "server_public_key": "<Z85>", "client_public_key": "<Z85>", "client_secret_key": "<Z85>",
     "pid": 1234, "max_bytes": 33554432}

The daemon writes it (`qwen_tray.connection_file`: atomically, restricted to the user
before the secret is in it) and removes it at stop; this module is the reading side
and the format both share. `QWEN_TRAY_CONNECTION` overrides the path for both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def runtime_dir(*, windows: bool | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where the daemon keeps its connection file and lock. The daemon uses this same function (one rule).

    Windows: `%LOCALAPPDATA%\\qwen-tray\\run`, not the Temp folder (Storage Sense and Disk Cleanup empty it while
    the daemon runs). POSIX: `$XDG_RUNTIME_DIR/qwen-tray` (the XDG place for sockets and such), else the private
    state dir (`$XDG_STATE_HOME` or `~/.local/state`, then `qwen-tray/run`), never a shared /tmp. Plain environment
    rules, not platformdirs, so that the client needs pyzmq alone (they are what platformdirs answers here).
    """
    env = os.environ if environ is None else environ
    if (os.name == "nt") if windows is None else windows:
        local = env.get("LOCALAPPDATA", "").strip() or str(Path.home() / "AppData" / "Local")
        return Path(local) / APP / "run"
    runtime = env.get("XDG_RUNTIME_DIR", "").strip()
    if runtime:
        return Path(runtime) / APP
    state = env.get("XDG_STATE_HOME", "").strip() or str(Path.home() / ".local" / "state")
    return Path(state) / APP / "run"


def default_path(*, windows: bool | None = None) -> Path:
    """Where the daemon writes the file: `$QWEN_TRAY_CONNECTION`, else connection.json in `runtime_dir()`."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return runtime_dir(windows=windows) / "connection.json"


# ---------------------------------------------------------------- read


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
