"""Windows behaviour that runs on Linux through thin seams: the ACL from the token's SID, the process check,
the runtime folder Storage Sense does not empty, and start-up errors under pythonw (no stderr)."""

from __future__ import annotations

import ctypes
import logging
import sys
from pathlib import Path
from typing import Any

import platformdirs.windows
import pytest

from qwen_tray import paths
from qwen_tray_client import connection, win32
from qwen_tray_client.connection import ConnectionFileError

SID = "S-1-5-21-1004336348-1177238915-682003330-1001"


# -- the connection file's ACL ----------------------------------------------------------------------------------
class FakeAcl:
    def __init__(self, sid: str = SID, fail: OSError | None = None) -> None:
        self.sid = sid
        self.fail = fail
        self.applied: list[tuple[str, str]] = []

    def user_sid(self) -> str:
        return self.sid

    def apply_sddl(self, path: str, sddl: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.applied.append((path, sddl))


def test_acl_is_one_entry_for_the_tokens_sid_not_the_environment(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERNAME", "mallory")  # the environment is not who we are
    monkeypatch.setenv("USERDOMAIN", "ELSEWHERE")
    acl = FakeAcl()
    connection.restrict_to_user(tmp_path / "c.json", windows=True, acl=acl)
    # D: the DACL; P: protected (nothing inherited from the folder); one ACE: Allow, File All access, this SID.
    assert acl.applied == [(str(tmp_path / "c.json"), f"D:P(A;;FA;;;{SID})")]
    assert connection.user_only_sddl("S-1-5-18") == "D:P(A;;FA;;;S-1-5-18)"


def test_acl_failures_are_connection_file_errors_and_nothing_is_written(tmp_path: Path) -> None:
    acl = FakeAcl(fail=OSError(5, "SetNamedSecurityInfoW failed"))
    restrict = lambda p: connection.restrict_to_user(p, windows=True, acl=acl)  # noqa: E731
    info = connection.ConnectionInfo("tcp://127.0.0.1:1", "s", "c", "k", 1)
    with pytest.raises(ConnectionFileError, match="cannot restrict"):
        connection.write_connection_file(tmp_path / "run" / "c.json", info, restrict)
    assert list((tmp_path / "run").iterdir()) == []  # the secret never reached the disk
    with pytest.raises(ConnectionFileError, match="not a SID"):
        connection.restrict_to_user(tmp_path / "x", windows=True, acl=FakeAcl(sid="alice"))


def test_no_subprocess_on_the_acl_path() -> None:
    """No icacls (a console window flashes under pythonw), so no subprocess at all."""
    source = Path(connection.__file__).read_text(encoding="utf-8")
    assert "subprocess" not in source and "icacls" not in source


# -- the process check ------------------------------------------------------------------------------------------
class FakeFn:
    def __init__(self, impl: Any) -> None:
        self.impl, self.argtypes, self.restype, self.calls = impl, None, None, []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        return self.impl(*args)


@pytest.fixture
def kernel32(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state: dict[str, Any] = {"wait": win32.WAIT_TIMEOUT, "open": 0x7FF6_1234_5678, "error": 0}
    fns = {
        "OpenProcess": FakeFn(lambda access, inherit, pid: state["open"]),
        "WaitForSingleObject": FakeFn(lambda h, ms: state["wait"]),
        "CloseHandle": FakeFn(lambda h: 1),
    }

    class Dll:
        def __getitem__(self, name: str) -> FakeFn:
            return fns[name]

    monkeypatch.setattr(ctypes, "WinDLL", lambda name, **kw: Dll(), raising=False)
    monkeypatch.setattr(ctypes, "get_last_error", lambda: state["error"], raising=False)
    win32._reset_for_tests()
    yield {"state": state, **fns}
    win32._reset_for_tests()


def test_windows_pid_alive_asks_whether_the_process_ended(kernel32: dict[str, Any]) -> None:
    state = kernel32["state"]
    assert connection._windows_pid_alive(4321) is True
    access, _, pid = kernel32["OpenProcess"].calls[-1]
    assert pid == 4321 and access == win32.PROCESS_QUERY_LIMITED_INFORMATION | win32.SYNCHRONIZE
    assert kernel32["WaitForSingleObject"].calls[-1] == (0x7FF6_1234_5678, 0)  # no wait; the full 64-bit handle
    assert kernel32["CloseHandle"].calls[-1] == (0x7FF6_1234_5678,)
    assert kernel32["OpenProcess"].argtypes == (win32.DWORD, win32.BOOL, win32.DWORD)
    assert kernel32["OpenProcess"].restype is win32.HANDLE  # not a C int: a handle is 64 bits
    state["wait"] = win32.WAIT_OBJECT_0  # ended (whatever its exit code was, 259 included)
    assert connection._windows_pid_alive(4321) is False
    state["open"], state["error"] = 0, win32.ERROR_ACCESS_DENIED  # another user's process
    assert connection._windows_pid_alive(4) is True
    state["error"] = 87  # ERROR_INVALID_PARAMETER: no such process
    assert connection._windows_pid_alive(99999) is False


# -- the runtime folder -----------------------------------------------------------------------------------------
LOCAL = r"C:\Users\al\AppData\Local"


@pytest.fixture
def windows_dirs(monkeypatch: pytest.MonkeyPatch) -> platformdirs.windows.Windows:
    """platformdirs' real Windows rules, with %LOCALAPPDATA% given (its ctypes lookup cannot run here)."""
    monkeypatch.setattr(platformdirs.windows, "_RESOLVE_WIN_FOLDER", lambda csidl: LOCAL)
    monkeypatch.delenv("QWEN_TRAY_CONNECTION", raising=False)
    return platformdirs.windows.Windows("qwen-tray", False)


def test_windows_runtime_dir_is_not_under_temp(windows_dirs: platformdirs.windows.Windows) -> None:
    assert "Temp" in Path(windows_dirs.user_runtime_dir).parts[-2:] or \
        windows_dirs.user_runtime_dir.replace("/", "\\").endswith("Temp\\qwen-tray")  # what platformdirs gives
    runtime = paths.default_paths(dirs=windows_dirs).runtime_dir
    text = str(runtime).replace("/", "\\")
    assert text == LOCAL + "\\qwen-tray\\run" and "Temp" not in text
    assert connection.default_path(windows_dirs) == paths.default_paths(dirs=windows_dirs).connection_file


# -- start-up errors under pythonw ------------------------------------------------------------------------------
@pytest.fixture
def pythonw(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """What pythonw gives a program: sys.stderr and sys.stdout are None. The message box is recorded."""
    from qwen_tray import cli

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    boxes: list[tuple[str, str]] = []
    monkeypatch.setattr(cli, "show_message_box", lambda title, text: boxes.append((title, text)))

    def no_console() -> None:  # in the test's own phase: pytest swaps sys.stderr between phases
        monkeypatch.setattr(sys, "stderr", None)
        monkeypatch.setattr(sys, "stdout", None)

    yield {"boxes": boxes, "log": paths.default_paths().log_file, "cli": cli, "no_console": no_console}
    for h in list(logging.getLogger().handlers):  # the fallback handler the test caused
        if getattr(h, "qwen_tray_startup", False):
            logging.getLogger().removeHandler(h)
            h.close()


def test_a_broken_config_under_pythonw_is_logged_and_shown(pythonw: dict[str, Any], tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[model\npath = 3\n", encoding="utf-8")
    pythonw["no_console"]()
    assert pythonw["cli"].main(["--config", str(cfg), "run"]) == 2
    assert len(pythonw["boxes"]) == 1 and str(cfg) in pythonw["boxes"][0][1]
    assert str(cfg) in pythonw["log"].read_text(encoding="utf-8")


def test_an_unexpected_error_under_pythonw_is_logged_with_its_traceback_and_shown(
        pythonw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from qwen_tray.commands import logs_cmd

    def boom(args: Any) -> int:
        raise ZeroDivisionError("something nobody expected")

    monkeypatch.setattr(logs_cmd, "run", boom, raising=False)
    parser = pythonw["cli"].build_parser()
    args = parser.parse_args(["logs"])
    args.func = boom
    monkeypatch.setattr(pythonw["cli"], "build_parser", lambda: type("P", (), {"parse_args": lambda s, a: args})())
    pythonw["no_console"]()
    assert pythonw["cli"].main(["logs"]) == 1
    text = pythonw["log"].read_text(encoding="utf-8")
    assert "Traceback" in text and "ZeroDivisionError: something nobody expected" in text
    (title, message), = pythonw["boxes"]
    assert "something nobody expected" in message and str(pythonw["log"]) in message


def test_startup_error_in_a_real_process_without_stderr(tmp_path: Path) -> None:
    """A child with sys.stderr = None (as pythonw gives it) and a broken config: the log file says why."""
    import os
    import subprocess

    cfg = tmp_path / "broken.toml"
    cfg.write_text("[hotkey]\nask_screen = 12\n", encoding="utf-8")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "c")}
    code = ("import sys; sys.stderr = None; sys.stdout = None; from qwen_tray.cli import main; "
            f"sys.exit(main(['--config', {str(cfg)!r}, 'run', '--headless']))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr == ""
    log = tmp_path / "state" / "qwen-tray" / "log" / "qwen-tray.log"
    assert "ask_screen" in log.read_text(encoding="utf-8")
