"""Linux: start at login through an XDG autostart entry, or a systemd user unit for the headless service.

Tray mode writes `$XDG_CONFIG_HOME/autostart/qwen-tray.desktop`, which every
XDG desktop (GNOME, KDE, Xfce, ...) starts inside the graphical session, where
the tray and hotkey need to live. Headless mode has no desktop to wait for, so
it is a systemd user unit `$XDG_CONFIG_HOME/systemd/user/qwen-tray.service`,
enabled with `systemctl --user enable`; when no systemd user manager is
reachable (a container, an SSH session without lingering), we make the same
`default.target.wants` link systemctl would make, so it starts at the next
login that runs systemd, and say so. Status is always read from these files,
because they are what starts at login.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import APP, AutostartError, AutostartStatus

DESKTOP_NAME = f"{APP}.desktop"
UNIT_NAME = f"{APP}.service"
WANTED_BY = "default.target"

# Characters that force quoting in a desktop entry's Exec key (Desktop Entry Specification, "The Exec key").
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def config_home() -> Path:
    """$XDG_CONFIG_HOME, or ~/.config when unset or not absolute (as the XDG spec says)."""
    env = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(env) if env and os.path.isabs(env) else Path.home() / ".config"


def launch_args(headless: bool = False, config_file: Path | None = None, executable: str | None = None) -> list[str]:
    """The command that starts qwen-tray at login: the venv's `qwen-tray` script, else `python -m qwen_tray`."""
    exe = Path(executable or sys.executable)
    script = exe.with_name(APP)
    args = [str(script)] if script.is_file() and os.access(script, os.X_OK) else [str(exe), "-m", "qwen_tray"]
    if config_file is not None:
        args += ["--config", str(Path(config_file).absolute())]
    args.append("run")
    if headless:
        args.append("--headless")
    return args


def exec_value(args: Sequence[str]) -> str:
    """Arguments as a desktop entry Exec value: quoted per the spec, then string-escaped (so `\\` becomes four)."""
    parts = []
    for arg in args:
        if "\n" in arg or "\r" in arg:
            raise AutostartError(f"cannot put a newline in a desktop entry command: {arg!r}")
        arg = arg.replace("%", "%%")
        if any(c in _EXEC_RESERVED for c in arg) or arg == "":
            escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
            arg = f'"{escaped}"'
        parts.append(arg)
    return " ".join(parts).replace("\\", "\\\\")


def unit_exec(args: Sequence[str]) -> str:
    """Arguments as a systemd ExecStart value: each quoted, `%` and `$` doubled so systemd takes them literally."""
    out = []
    for arg in args:
        if "\n" in arg:
            raise AutostartError(f"cannot put a newline in a unit command: {arg!r}")
        q = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
        out.append(f'"{q}"')
    return " ".join(out)


def desktop_entry(args: Sequence[str], *, autostart: bool) -> str:
    """A desktop entry that passes desktop-file-validate; the autostart copy carries the GNOME enable key."""
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Name=qwen-tray",
        "GenericName=Screen assistant",
        "Comment=Ask a local vision-language model about what is on your screen",
        f"Exec={exec_value(args)}",
        f"Icon={APP}",
        "Terminal=false",
        "Categories=Utility;",
        "StartupNotify=false",
    ]
    if autostart:
        lines.append("X-GNOME-Autostart-enabled=true")
    return "\n".join(lines) + "\n"


def unit_text(args: Sequence[str]) -> str:
    """The systemd user unit for the headless service."""
    return (
        "[Unit]\n"
        "Description=qwen-tray local screen assistant (headless service)\n"
        # A crash loop ends after 3 starts in 5 minutes (`systemctl --user reset-failed` to try again)...
        "StartLimitIntervalSec=300\n"
        "StartLimitBurst=3\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={unit_exec(args)}\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        # ...and what a restart cannot fix is not retried: 2 = config or model error, 1 = already running.
        "RestartPreventExitStatus=1 2\n"
        "TimeoutStopSec=30\n"
        "\n"
        "[Install]\n"
        f"WantedBy={WANTED_BY}\n"
    )


def read_desktop_entry(path: Path) -> dict[str, str]:
    """Keys of the [Desktop Entry] group (string escapes undone), enough to read our own files back."""
    keys: dict[str, str] = {}
    group = ""
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
            continue
        if group == "Desktop Entry" and "=" in line:
            k, v = line.split("=", 1)
            keys[k.strip()] = _unescape(v.strip())
    return keys


def _unescape(value: str) -> str:
    out, i = [], 0
    table = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value) and value[i + 1] in table:
            out.append(table[value[i + 1]])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class Systemctl:
    """`systemctl --user`, if a user manager answers. The runner is the seam for tests (none runs here)."""

    def __init__(self, runner: Runner | None = None) -> None:
        self._runner = runner

    def _run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        if self._runner is not None:
            return self._runner(list(args))
        return subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, timeout=20, check=False)

    def available(self) -> bool:
        if self._runner is None and shutil.which("systemctl") is None:
            return False
        try:
            return self._run(["show-environment"]).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def call(self, *args: str) -> None:
        try:
            res = self._run(list(args))
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AutostartError(f"systemctl --user {' '.join(args)} failed: {exc}") from exc
        if res.returncode != 0:
            msg = (res.stderr or res.stdout or "").strip().splitlines()
            raise AutostartError(f"systemctl --user {' '.join(args)} failed: {msg[-1] if msg else res.returncode}")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class LinuxAutostart:
    """XDG autostart entry (tray) or systemd user unit (headless); at most one of them at a time."""

    def __init__(self, base: Path | None = None, systemctl: Systemctl | None = None,
                 executable: str | None = None) -> None:
        self.base = base if base is not None else config_home()
        self.systemctl = systemctl if systemctl is not None else Systemctl()
        self.executable = executable

    @property
    def desktop_file(self) -> Path:
        return self.base / "autostart" / DESKTOP_NAME

    @property
    def unit_file(self) -> Path:
        return self.base / "systemd" / "user" / UNIT_NAME

    @property
    def wants_link(self) -> Path:
        return self.base / "systemd" / "user" / f"{WANTED_BY}.wants" / UNIT_NAME

    def enable(self, headless: bool = False, config_file: Path | None = None) -> AutostartStatus:
        args = launch_args(headless, config_file, self.executable)
        try:
            if headless:
                self._remove_desktop()
                return self._enable_unit(args)
            self._disable_unit()
            _write_atomic(self.desktop_file, desktop_entry(args, autostart=True))
        except OSError as exc:
            raise AutostartError(f"could not write the autostart files under {self.base}: {exc}") from exc
        return self.status()

    def disable(self) -> AutostartStatus:
        try:
            self._remove_desktop()
            self._disable_unit()
        except OSError as exc:
            raise AutostartError(f"could not remove the autostart files under {self.base}: {exc}") from exc
        return self.status()

    def status(self) -> AutostartStatus:
        if self.desktop_file.is_file():
            keys = read_desktop_entry(self.desktop_file)
            cmd = keys.get("Exec", "")
            if keys.get("Hidden", "").lower() == "true" or keys.get("X-GNOME-Autostart-enabled", "").lower() == "false":
                return AutostartStatus(False, str(self.desktop_file), cmd, "tray",
                                       "turned off in the desktop's startup settings")
            return AutostartStatus(True, str(self.desktop_file), cmd, "tray")
        if self.unit_file.is_file():
            cmd = ""
            for line in self.unit_file.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("ExecStart="):
                    cmd = line.split("=", 1)[1]
            if self.wants_link.is_symlink() or self.wants_link.exists():
                return AutostartStatus(True, str(self.unit_file), cmd, "headless")
            return AutostartStatus(False, str(self.unit_file), cmd, "headless",
                                   f"unit written but not enabled: systemctl --user enable {UNIT_NAME}")
        return AutostartStatus(False, str(self.desktop_file))

    def _enable_unit(self, args: list[str]) -> AutostartStatus:
        _write_atomic(self.unit_file, unit_text(args))
        note = ""
        if self.systemctl.available():
            self.systemctl.call("daemon-reload")
            self.systemctl.call("enable", UNIT_NAME)
        else:
            # What `systemctl --user enable` does for WantedBy=default.target, done by hand.
            self.wants_link.parent.mkdir(parents=True, exist_ok=True)
            if self.wants_link.is_symlink() or self.wants_link.exists():
                self.wants_link.unlink()
            self.wants_link.symlink_to(Path("..") / UNIT_NAME)
            note = ("no systemd user manager answered, so the unit was linked by hand: it starts at your next login "
                    f"if your session runs systemd; otherwise start `{' '.join(args)}` from your session startup")
        st = self.status()
        return AutostartStatus(st.enabled, st.where, st.command, st.mode, note or st.note)

    def _disable_unit(self) -> None:
        if not (self.unit_file.exists() or self.wants_link.is_symlink()):
            return
        if self.systemctl.available():
            with contextlib.suppress(AutostartError):  # the files below are removed either way
                self.systemctl.call("disable", UNIT_NAME)
        if self.wants_link.is_symlink() or self.wants_link.exists():
            self.wants_link.unlink()
        self.unit_file.unlink(missing_ok=True)
        for d in (self.wants_link.parent, self.unit_file.parent, self.unit_file.parent.parent):
            _rmdir_if_empty(d)
        if self.systemctl.available():
            with contextlib.suppress(AutostartError):
                self.systemctl.call("daemon-reload")

    def _remove_desktop(self) -> None:
        self.desktop_file.unlink(missing_ok=True)
        _rmdir_if_empty(self.desktop_file.parent)


def _rmdir_if_empty(d: Path) -> None:
    """Tidy the folders we created, never anything with someone else's files in it."""
    with contextlib.suppress(OSError):
        d.rmdir()
