"""Start at login: one small interface over the per-platform mechanisms.

Why a package of its own: `qwen-tray autostart`, the tray's "Start at login"
toggle and the installers must all write the same entry, or `status` would
disagree with what actually starts. Windows uses the HKCU Run key
(`windows.py`); Linux an XDG autostart `.desktop` file, or for the headless
service a systemd user unit (`linux.py`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

APP = "qwen-tray"


class AutostartError(RuntimeError):
    """Autostart could not be changed (a file or registry write failed); the message says what to do."""


@dataclass(frozen=True)
class AutostartStatus:
    """What starts at login, from where, and anything the user should know about it."""

    enabled: bool
    where: str  # the file or registry value that controls it
    command: str = ""  # the command line that runs at login ("" when nothing is registered)
    mode: str = ""  # "tray" or "headless" when enabled
    note: str = ""  # e.g. "disabled in Task Manager", "unit written but systemd is not reachable"


class Backend(Protocol):
    def enable(self, headless: bool = False, config_file: Path | None = None) -> AutostartStatus: ...

    def disable(self) -> AutostartStatus: ...

    def status(self) -> AutostartStatus: ...


def backend() -> Backend:
    """The mechanism for this platform (a fresh one per call: paths follow the environment)."""
    if sys.platform == "win32":
        from .windows import WindowsAutostart

        return WindowsAutostart()
    if sys.platform == "darwin":
        raise AutostartError("start at login is not supported on macOS yet")
    from .linux import LinuxAutostart

    return LinuxAutostart()


def enable(headless: bool = False, config_file: Path | None = None) -> AutostartStatus:
    """Start qwen-tray at login (the tray, or with `headless` the service without a desktop)."""
    return backend().enable(headless=headless, config_file=config_file)


def disable() -> AutostartStatus:
    """Stop starting qwen-tray at login (both modes); a no-op when nothing is registered."""
    return backend().disable()


def status() -> AutostartStatus:
    """Whether qwen-tray starts at login, read back from the registry or files (never from memory)."""
    return backend().status()
