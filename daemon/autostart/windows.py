"""Windows: start at login through the per-user Run key (HKCU, no admin rights).

Why the Run key and not a Startup-folder shortcut: one registry value is easy to
read back exactly (status), needs no COM to write, and is what Task Manager's
Startup tab lists. Task Manager records "disabled" in a sibling key,
`Explorer\\StartupApproved\\Run`; status honours it and `enable` clears it,
because a user who runs `autostart on` wants it to start.

All registry access goes through `RegistryApi`, a thin seam: `WinRegistry` is
winreg, and the tests run the real logic here against a dict on Linux.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any, Protocol

from . import APP, AutostartError, AutostartStatus

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
VALUE_NAME = APP
WHERE = rf"HKCU\{RUN_KEY}\{VALUE_NAME}"


class RegistryApi(Protocol):
    """The few HKCU operations autostart needs. Values are str (REG_SZ) or bytes (REG_BINARY)."""

    def read(self, key: str, name: str) -> str | bytes | None: ...

    def write_string(self, key: str, name: str, value: str) -> None: ...

    def delete(self, key: str, name: str) -> None:
        """Remove a value; no error when the value or key is absent."""


class WinRegistry:
    """`RegistryApi` over the standard winreg module (HKEY_CURRENT_USER only)."""

    def __init__(self, winreg: Any = None) -> None:
        self._w = winreg if winreg is not None else importlib.import_module("winreg")

    def read(self, key: str, name: str) -> str | bytes | None:
        w = self._w
        try:
            with w.OpenKey(w.HKEY_CURRENT_USER, key, 0, w.KEY_QUERY_VALUE) as k:
                value, kind = w.QueryValueEx(k, name)
        except FileNotFoundError:
            return None
        if kind == w.REG_EXPAND_SZ:
            return w.ExpandEnvironmentStrings(value)
        if isinstance(value, (str, bytes)):
            return value
        return str(value)

    def write_string(self, key: str, name: str, value: str) -> None:
        w = self._w
        with w.CreateKeyEx(w.HKEY_CURRENT_USER, key, 0, w.KEY_SET_VALUE) as k:
            w.SetValueEx(k, name, 0, w.REG_SZ, value)

    def delete(self, key: str, name: str) -> None:
        w = self._w
        try:
            with w.OpenKey(w.HKEY_CURRENT_USER, key, 0, w.KEY_SET_VALUE) as k:
                w.DeleteValue(k, name)
        except FileNotFoundError:
            pass


GUI_SCRIPT = "qwen-tray-gui.exe"  # [project.gui-scripts]: a pythonw launcher, no console window
CONSOLE_SCRIPT = "qwen-tray.exe"


def launch_args(headless: bool = False, config_file: Path | None = None, executable: str | None = None) -> list[str]:
    """The program and arguments that start qwen-tray at login.

    The installed launcher, never `python -m qwen_tray` (another distribution's top-level `daemon` package could
    answer to that name): `qwen-tray-gui.exe` beside the running interpreter (a venv's Scripts folder, where
    the installer's `uv venv` puts it) or in the interpreter's scripts folder; `qwen-tray.exe` if the GUI
    launcher is missing. AutostartError when neither exists (qwen-tray is not installed as a package).
    """
    exe = Path(executable or sys.executable)
    folders = [exe.parent, exe.parent / "Scripts"]
    if executable is None:
        folders.append(Path(sysconfig.get_path("scripts")))
    program = next((str(f / name) for name in (GUI_SCRIPT, CONSOLE_SCRIPT) for f in folders if (f / name).is_file()),
                   None)
    if program is None:
        raise AutostartError(f"cannot find {GUI_SCRIPT} beside {exe}: install qwen-tray (the Setup, or "
                             "`pip install` into a venv) and run `qwen-tray autostart on` from there")
    args = [program]
    if config_file is not None:
        args += ["--config", str(config_file)]
    args.append("run")
    if headless:
        args.append("--headless")
    return args


def command_line(args: list[str]) -> str:
    """One Windows command line with MSVCRT quoting (spaces in user names are common)."""
    return subprocess.list2cmdline(args)


def first_argument(cmdline: str) -> str:
    """The program part of a command line, as CreateProcess reads it."""
    s = cmdline.lstrip()
    if s.startswith('"'):
        end = s.find('"', 1)
        return s[1:] if end < 0 else s[1:end]
    return s.split(" ", 1)[0].split("\t", 1)[0]


def approved_disabled(data: str | bytes | None) -> bool:
    """Task Manager's StartupApproved value: first byte even = enabled (02), odd = disabled (03)."""
    return isinstance(data, bytes) and len(data) > 0 and data[0] % 2 == 1


class WindowsAutostart:
    """The Run-key value `qwen-tray` = the quoted command line that starts the tray (or headless service)."""

    def __init__(self, registry: RegistryApi | None = None, executable: str | None = None) -> None:
        self.registry = registry if registry is not None else WinRegistry()
        self.executable = executable

    def enable(self, headless: bool = False, config_file: Path | None = None) -> AutostartStatus:
        cmd = command_line(launch_args(headless, config_file, self.executable))
        try:
            self.registry.write_string(RUN_KEY, VALUE_NAME, cmd)
            self.registry.delete(APPROVED_KEY, VALUE_NAME)
        except OSError as exc:
            raise AutostartError(f"could not write {WHERE} ({exc}); check that your registry is not locked") from exc
        return self.status()

    def disable(self) -> AutostartStatus:
        try:
            self.registry.delete(RUN_KEY, VALUE_NAME)
            self.registry.delete(APPROVED_KEY, VALUE_NAME)
        except OSError as exc:
            raise AutostartError(f"could not remove {WHERE} ({exc})") from exc
        return self.status()

    def status(self) -> AutostartStatus:
        value = self.registry.read(RUN_KEY, VALUE_NAME)
        if not isinstance(value, str) or not value.strip():
            return AutostartStatus(False, WHERE)
        mode = "headless" if "--headless" in value.split() else "tray"
        if approved_disabled(self.registry.read(APPROVED_KEY, VALUE_NAME)):
            return AutostartStatus(False, WHERE, value, mode, "disabled in Task Manager's Startup tab")
        program = first_argument(value)
        note = "" if Path(program).is_file() else f"{program} does not exist: run `qwen-tray autostart on` again"
        return AutostartStatus(True, WHERE, value, mode, note)
