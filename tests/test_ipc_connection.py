"""The connection file: user-only, atomic, found where the daemon writes it, removed only by its writer."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from qwen_tray.paths import default_paths
from qwen_tray_client import connection
from qwen_tray_client.connection import ConnectionFileError, ConnectionInfo, DaemonNotRunning, read_connection_file
from qwen_tray.connection_file import remove_connection_file, write_connection_file


def info(pid: int | None = None) -> ConnectionInfo:
    return ConnectionInfo("tcp://127.0.0.1:5555", "S" * 40, "C" * 40, "K" * 40, pid or os.getpid(), 1024)


def test_written_atomically_for_the_user_alone(tmp_path: Path) -> None:
    path = tmp_path / "run" / "connection.json"
    seen = []

    def restrict(tmp: Path) -> None:  # the secret is written only after the file is restricted
        seen.append((tmp.parent, tmp.stat().st_size))
        connection.restrict_to_user(tmp)

    write_connection_file(path, info(), restrict)
    assert seen == [(path.parent, 0)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data == {"protocol": "qwen-tray/1", "endpoint": "tcp://127.0.0.1:5555", "server_public_key": "S" * 40,
                    "client_public_key": "C" * 40, "client_secret_key": "K" * 40, "pid": os.getpid(),
                    "max_bytes": 1024}
    assert [p.name for p in path.parent.iterdir()] == ["connection.json"]  # no temp file left
    write_connection_file(path, info())  # replacing an old file (a killed daemon's) works too
    assert read_connection_file(path) == ConnectionInfo(**{**info().__dict__, "path": str(path)})


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def boom(_tmp: Path) -> None:
        raise PermissionError("no")

    folder = tmp_path / "run"
    with pytest.raises(PermissionError):
        write_connection_file(folder / "c.json", info(), boom)
    assert list(folder.iterdir()) == []


def test_default_path_is_the_daemons(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert connection.default_path() == default_paths().connection_file
    monkeypatch.delenv("XDG_RUNTIME_DIR")  # a container or cron job: the private state dir
    assert connection.default_path() == default_paths().connection_file
    assert "state" in str(connection.default_path())
    monkeypatch.setenv("QWEN_TRAY_CONNECTION", str(tmp_path / "elsewhere.json"))
    assert connection.default_path() == default_paths().connection_file == tmp_path / "elsewhere.json"


def test_reading_reports_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "connection.json"
    with pytest.raises(DaemonNotRunning, match="not running .*no connection file"):
        read_connection_file(path)
    path.write_text("{oops")
    with pytest.raises(ConnectionFileError, match="not a qwen-tray connection file"):
        read_connection_file(path)
    path.write_text(json.dumps({"protocol": "qwen-tray/1", "endpoint": "x"}))
    with pytest.raises(ConnectionFileError, match="missing server_public_key"):
        read_connection_file(path)
    path.write_text(json.dumps({**info().as_dict(), "protocol": "qwen-tray/2"}))
    with pytest.raises(ConnectionFileError, match="qwen-tray/2"):
        read_connection_file(path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_connection_file(path, info(dead.pid))
    with pytest.raises(DaemonNotRunning, match=f"left from process {dead.pid}, which has exited"):
        read_connection_file(path)


def test_removed_only_by_the_daemon_that_wrote_it(tmp_path: Path) -> None:
    path = tmp_path / "connection.json"
    write_connection_file(path, info(os.getppid()))  # a newer daemon's file
    assert not remove_connection_file(path, os.getpid()) and path.exists()
    write_connection_file(path, info())
    assert remove_connection_file(path, os.getpid()) and not path.exists()
    assert not remove_connection_file(path, os.getpid())  # gone already: fine


def test_pid_alive() -> None:
    assert connection.pid_alive(os.getpid())
    assert not connection.pid_alive(0) and not connection.pid_alive(-5)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert not connection.pid_alive(p.pid)
