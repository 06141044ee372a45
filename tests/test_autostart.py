"""Start at login: the Windows Run-key logic against a fake registry, the Linux files for real, and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import qwen_tray_cmd, subprocess_env

from qwen_tray.autostart import AutostartError, linux, windows
from qwen_tray.autostart.linux import LinuxAutostart, Systemctl
from qwen_tray.autostart.windows import APPROVED_KEY, RUN_KEY, VALUE_NAME, WindowsAutostart, WinRegistry


class FakeRegistry:
    """HKCU as a dict {(key, name): value}: the RegistryApi seam, nothing more."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str | bytes] = {}

    def read(self, key: str, name: str) -> str | bytes | None:
        return self.values.get((key, name))

    def write_string(self, key: str, name: str, value: str) -> None:
        assert isinstance(value, str)
        self.values[(key, name)] = value

    def delete(self, key: str, name: str) -> None:
        self.values.pop((key, name), None)


def windows_cmdline_split(cmdline: str) -> list[str]:
    """CommandLineToArgvW's rules (backslashes before quotes), to check our quoting round-trips."""
    args, cur, i, in_quotes, have = [], [], 0, False, False
    while i < len(cmdline):
        c = cmdline[i]
        if c == "\\":
            n = 0
            while i < len(cmdline) and cmdline[i] == "\\":
                n += 1
                i += 1
            if i < len(cmdline) and cmdline[i] == '"':
                cur.append("\\" * (n // 2))
                if n % 2:
                    cur.append('"')
                    i += 1
            else:
                cur.append("\\" * n)
            have = True
            continue
        if c == '"':
            in_quotes = not in_quotes
            have = True
        elif c in " \t" and not in_quotes:
            if have:
                args.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(c)
            have = True
        i += 1
    if have:
        args.append("".join(cur))
    return args


@pytest.fixture
def win_python(tmp_path: Path) -> Path:
    """A fake installed Windows layout: a folder with spaces holding python.exe and the two launchers."""
    scripts = tmp_path / "John Smith" / "AppData" / "Local" / "qwen-tray" / "venv" / "Scripts"
    scripts.mkdir(parents=True)
    for name in ("python.exe", "pythonw.exe", "qwen-tray.exe", "qwen-tray-gui.exe"):
        (scripts / name).write_bytes(b"MZ")
    return scripts / "python.exe"


# ---------------------------------------------------------------- Windows (fake registry)


def test_windows_enable_writes_quoted_run_value_for_the_gui_launcher(win_python: Path) -> None:
    reg = FakeRegistry()
    st = WindowsAutostart(reg, executable=str(win_python)).enable()
    value = reg.values[(RUN_KEY, VALUE_NAME)]
    assert windows_cmdline_split(value) == [str(win_python.with_name("qwen-tray-gui.exe")), "run"]
    assert "-m qwen_tray" not in value  # another package named `daemon` could answer to that
    assert value.startswith('"')  # the path has spaces: unquoted it would run "C:\...\John"
    assert st.enabled and st.mode == "tray" and st.command == value and st.note == ""
    assert st.where == r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run\qwen-tray"


def test_windows_headless_and_config_are_in_the_command(win_python: Path, tmp_path: Path) -> None:
    reg = FakeRegistry()
    cfg = tmp_path / "my config" / "config.toml"
    st = WindowsAutostart(reg, executable=str(win_python)).enable(headless=True, config_file=cfg)
    assert windows_cmdline_split(reg.values[(RUN_KEY, VALUE_NAME)])[1:] == [
        "--config", str(cfg), "run", "--headless"]
    assert st.enabled and st.mode == "headless"


def test_windows_disable_removes_value_and_is_idempotent(win_python: Path) -> None:
    reg = FakeRegistry()
    auto = WindowsAutostart(reg, executable=str(win_python))
    auto.enable()
    reg.values[("Software\\Other", "keep")] = "x"
    st = auto.disable()
    assert not st.enabled and st.command == ""
    assert (RUN_KEY, VALUE_NAME) not in reg.values
    assert reg.values == {("Software\\Other", "keep"): "x"}
    assert not auto.disable().enabled  # nothing registered: still fine


def test_windows_status_honours_task_manager_disable_and_enable_clears_it(win_python: Path) -> None:
    reg = FakeRegistry()
    auto = WindowsAutostart(reg, executable=str(win_python))
    auto.enable()
    reg.values[(APPROVED_KEY, VALUE_NAME)] = bytes([3]) + bytes(11)  # what Task Manager writes for "Disabled"
    st = auto.status()
    assert not st.enabled and "Task Manager" in st.note and st.command
    reg.values[(APPROVED_KEY, VALUE_NAME)] = bytes([2]) + bytes(11)  # "Enabled"
    assert auto.status().enabled
    reg.values[(APPROVED_KEY, VALUE_NAME)] = bytes([3]) + bytes(11)
    assert auto.enable().enabled
    assert (APPROVED_KEY, VALUE_NAME) not in reg.values


def test_windows_status_reads_a_value_written_by_the_installer_and_flags_a_missing_program(tmp_path: Path) -> None:
    reg = FakeRegistry()
    reg.values[(RUN_KEY, VALUE_NAME)] = '"C:\\Gone Away\\venv\\Scripts\\qwen-tray-gui.exe" run'
    st = WindowsAutostart(reg).status()
    assert st.enabled and st.mode == "tray"
    assert "does not exist" in st.note and "C:\\Gone Away\\venv\\Scripts\\qwen-tray-gui.exe" in st.note


def test_windows_falls_back_to_the_console_launcher_and_refuses_without_any(tmp_path: Path) -> None:
    exe = tmp_path / "py" / "python.exe"
    exe.parent.mkdir()
    exe.write_bytes(b"MZ")
    reg = FakeRegistry()
    with pytest.raises(AutostartError, match="qwen-tray-gui.exe"):
        WindowsAutostart(reg, executable=str(exe)).enable()  # never `python -m qwen_tray`
    assert reg.values == {}
    (exe.parent / "Scripts").mkdir()
    (exe.parent / "Scripts" / "qwen-tray.exe").write_bytes(b"MZ")  # a python.org install: Scripts\ beside it
    WindowsAutostart(reg, executable=str(exe)).enable()
    assert windows_cmdline_split(reg.values[(RUN_KEY, VALUE_NAME)]) == [str(exe.parent / "Scripts" / "qwen-tray.exe"),
                                                                         "run"]


def test_windows_write_failure_is_a_clear_error(win_python: Path) -> None:
    class Denied(FakeRegistry):
        def write_string(self, key: str, name: str, value: str) -> None:
            raise PermissionError(5, "Access is denied")

    with pytest.raises(AutostartError, match="could not write HKCU"):
        WindowsAutostart(Denied(), executable=str(win_python)).enable()


class FakeWinreg:
    """Just enough of the winreg module to check WinRegistry calls it the way Windows needs."""

    HKEY_CURRENT_USER = "HKCU"
    KEY_QUERY_VALUE, KEY_SET_VALUE = 1, 2
    REG_SZ, REG_EXPAND_SZ, REG_BINARY = 1, 2, 3

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, tuple[object, int]]] = {}

    class _Key:
        def __init__(self, values: dict) -> None:
            self.values = values

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def OpenKey(self, root: str, key: str, reserved: int, access: int):  # noqa: N802 - winreg's names
        assert root == "HKCU" and reserved == 0
        if key not in self.keys:
            raise FileNotFoundError(2, "not found")
        return self._Key(self.keys[key])

    def CreateKeyEx(self, root: str, key: str, reserved: int, access: int):  # noqa: N802
        assert root == "HKCU" and access == self.KEY_SET_VALUE
        return self._Key(self.keys.setdefault(key, {}))

    def QueryValueEx(self, k: _Key, name: str):  # noqa: N802
        if name not in k.values:
            raise FileNotFoundError(2, "not found")
        return k.values[name]

    def SetValueEx(self, k: _Key, name: str, reserved: int, kind: int, value: object) -> None:  # noqa: N802
        k.values[name] = (value, kind)

    def DeleteValue(self, k: _Key, name: str) -> None:  # noqa: N802
        if name not in k.values:
            raise FileNotFoundError(2, "not found")
        del k.values[name]

    def ExpandEnvironmentStrings(self, s: str) -> str:  # noqa: N802
        return s.replace("%LOCALAPPDATA%", "C:\\Users\\u\\AppData\\Local")


def test_winregistry_uses_reg_sz_under_hkcu_and_tolerates_missing_keys() -> None:
    w = FakeWinreg()
    reg = WinRegistry(w)
    assert reg.read(RUN_KEY, VALUE_NAME) is None  # key absent
    reg.delete(RUN_KEY, VALUE_NAME)  # key absent: no error
    reg.write_string(RUN_KEY, VALUE_NAME, '"C:\\x y\\qwen-tray-gui.exe" run')
    assert w.keys[RUN_KEY][VALUE_NAME] == ('"C:\\x y\\qwen-tray-gui.exe" run', w.REG_SZ)
    assert reg.read(RUN_KEY, VALUE_NAME) == '"C:\\x y\\qwen-tray-gui.exe" run'
    reg.delete(RUN_KEY, VALUE_NAME)
    reg.delete(RUN_KEY, VALUE_NAME)  # value absent: no error
    assert reg.read(RUN_KEY, VALUE_NAME) is None
    w.keys[RUN_KEY][VALUE_NAME] = ("%LOCALAPPDATA%\\qwen-tray\\venv\\Scripts\\qwen-tray-gui.exe run",
                                   w.REG_EXPAND_SZ)
    assert reg.read(RUN_KEY, VALUE_NAME).startswith("C:\\Users\\u\\AppData\\Local\\qwen-tray")
    w.keys[APPROVED_KEY] = {VALUE_NAME: (bytes([3, 0, 0]), w.REG_BINARY)}
    assert reg.read(APPROVED_KEY, VALUE_NAME) == bytes([3, 0, 0])


# ---------------------------------------------------------------- Linux (real files)


def _exec_argv(exec_value: str) -> list[str]:
    """Split an Exec value (string escapes already undone) by the Desktop Entry Specification's quoting rules."""
    args, cur, i, quoted, have = [], [], 0, False, False
    while i < len(exec_value):
        c = exec_value[i]
        if quoted and c == "\\" and i + 1 < len(exec_value) and exec_value[i + 1] in '"`$\\':
            cur.append(exec_value[i + 1])
            i += 2
            continue
        if c == '"':
            quoted, have = not quoted, True
        elif c == " " and not quoted:
            if have:
                args.append("".join(cur))
            cur, have = [], False
        elif c == "%" and exec_value[i + 1 : i + 2] == "%":
            cur.append("%")
            have = True
            i += 1
        else:
            cur.append(c)
            have = True
        i += 1
    assert not quoted, "unbalanced quotes"
    if have:
        args.append("".join(cur))
    return args


def test_linux_tray_entry_is_valid_and_status_reads_it(isolated_user_dirs: Path) -> None:
    auto = LinuxAutostart()
    cfg_home = Path(os.environ["XDG_CONFIG_HOME"])
    st = auto.enable()
    desktop = cfg_home / "autostart" / "qwen-tray.desktop"
    assert st.enabled and st.mode == "tray" and st.where == str(desktop)
    res = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "", res.stdout + res.stderr
    keys = linux.read_desktop_entry(desktop)
    assert keys["X-GNOME-Autostart-enabled"] == "true" and keys["Terminal"] == "false"
    argv = _exec_argv(keys["Exec"])
    assert argv[-1] == "run" and Path(argv[0]).is_file()
    assert st.command == keys["Exec"]


def test_linux_exec_quoting_survives_awkward_paths(tmp_path: Path) -> None:
    awkward = tmp_path / "my $HOME's \"apps\" 100%" / "bin"
    awkward.mkdir(parents=True)
    script = awkward / "qwen-tray"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    auto = LinuxAutostart(base=tmp_path / "cfg", executable=str(awkward / "python3"))
    auto.enable(config_file=tmp_path / "a b\\c.toml")
    desktop = auto.desktop_file
    res = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "", res.stdout
    argv = _exec_argv(linux.read_desktop_entry(desktop)["Exec"])
    assert argv == [str(script), "--config", str(tmp_path / "a b\\c.toml"), "run"]


def test_linux_falls_back_to_python_m_daemon_without_the_script(tmp_path: Path) -> None:
    args = linux.launch_args(executable=str(tmp_path / "python3"))
    assert args == [str(tmp_path / "python3"), "-m", "qwen_tray", "run"]


def test_linux_status_respects_desktop_disabling(isolated_user_dirs: Path) -> None:
    auto = LinuxAutostart()
    auto.enable()
    text = auto.desktop_file.read_text().replace("X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false")
    auto.desktop_file.write_text(text)
    st = auto.status()
    assert not st.enabled and "startup settings" in st.note
    auto.desktop_file.write_text(text.replace("=false", "=true") + "Hidden=true\n")
    assert not auto.status().enabled


def test_linux_headless_unit_without_systemd_is_linked_by_hand(isolated_user_dirs: Path) -> None:
    auto = LinuxAutostart(systemctl=Systemctl(runner=lambda args: subprocess.CompletedProcess(args, 1, "", "no bus")))
    auto.enable()  # tray first: headless must replace it
    st = auto.enable(headless=True)
    assert not auto.desktop_file.exists()
    assert st.enabled and st.mode == "headless" and "linked by hand" in st.note
    assert auto.wants_link.is_symlink() and auto.wants_link.resolve() == auto.unit_file.resolve()
    text = auto.unit_file.read_text()
    assert 'ExecStart="' in text and '"run" "--headless"' in text and "WantedBy=default.target" in text
    res = subprocess.run(["systemd-analyze", "verify", str(auto.unit_file)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert auto.status().enabled
    auto.wants_link.unlink()
    st = auto.status()
    assert not st.enabled and "not enabled" in st.note
    st = auto.disable()
    assert not st.enabled and not auto.unit_file.exists()
    assert not (auto.base / "systemd").exists()  # the folders we made are gone too


def test_linux_headless_with_systemd_uses_systemctl(isolated_user_dirs: Path) -> None:
    calls: list[list[str]] = []
    auto = LinuxAutostart()

    def systemctl(args: list[str]) -> subprocess.CompletedProcess[str]:
        """Stands in for a reachable `systemctl --user` (none runs here): enable/disable act like it."""
        calls.append(args)
        if args[0] == "enable":
            auto.wants_link.parent.mkdir(parents=True, exist_ok=True)
            auto.wants_link.symlink_to(Path("..") / args[1])
        elif args[0] == "disable":
            auto.wants_link.unlink()
        return subprocess.CompletedProcess(args, 0, "", "")

    auto.systemctl = Systemctl(runner=systemctl)
    st = auto.enable(headless=True)
    assert st.enabled and st.note == ""
    assert ["daemon-reload"] in calls and ["enable", "qwen-tray.service"] in calls
    calls.clear()
    st = auto.disable()
    assert not st.enabled and ["disable", "qwen-tray.service"] in calls and not auto.unit_file.exists()


def test_linux_systemctl_failure_is_reported(isolated_user_dirs: Path) -> None:
    def runner(args: list[str]) -> subprocess.CompletedProcess[str]:
        if args[0] == "enable":
            return subprocess.CompletedProcess(args, 1, "", "Failed to enable unit: Access denied")
        return subprocess.CompletedProcess(args, 0, "", "")

    with pytest.raises(AutostartError, match="Access denied"):
        LinuxAutostart(systemctl=Systemctl(runner=runner)).enable(headless=True)


def test_linux_honours_xdg_config_home_and_falls_back_to_dot_config(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert LinuxAutostart().desktop_file == tmp_path / "xdg" / "autostart" / "qwen-tray.desktop"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert LinuxAutostart().desktop_file == tmp_path / "home" / ".config" / "autostart" / "qwen-tray.desktop"


def test_unit_exec_escapes_systemd_specials() -> None:
    assert linux.unit_exec(["/a b/q", "50%", "$HOME", 'x"y']) == '"/a b/q" "50%%" "$$HOME" "x\\"y"'


# ---------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*qwen_tray_cmd(), *args], capture_output=True, text=True, env=subprocess_env(),
                          timeout=120)


def test_cli_on_status_off_agree_with_the_file(isolated_user_dirs: Path) -> None:
    desktop = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "qwen-tray.desktop"
    res = _cli("autostart", "status", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["enabled"] is False
    res = _cli("autostart", "on")
    assert res.returncode == 0, res.stderr
    assert "autostart: on (tray)" in res.stdout and str(desktop) in res.stdout and desktop.is_file()
    st = json.loads(_cli("autostart", "status", "--json").stdout)
    assert st["enabled"] is True and st["where"] == str(desktop) and st["mode"] == "tray"
    res = _cli("autostart", "off")
    assert res.returncode == 0 and "autostart: off" in res.stdout and not desktop.exists()
    res = _cli("autostart", "status", "--headless")
    assert res.returncode == 2 and "--headless only goes with" in res.stderr and "Traceback" not in res.stderr


def test_cli_reports_an_unwritable_config_dir_in_one_sentence(isolated_user_dirs: Path) -> None:
    # A file where the autostart folder should be fails for every user, root included.
    (Path(os.environ["XDG_CONFIG_HOME"]) / "autostart").write_text("not a directory")
    res = _cli("autostart", "on")
    assert res.returncode == 2
    assert res.stderr.startswith("qwen-tray: error: could not write the autostart files")
    assert "Traceback" not in res.stderr


# ---------------------------------------------------------------- the Windows installer files agree with the Python


REPO = Path(__file__).resolve().parent.parent
WIN = REPO / "installer" / "windows"


def _iss() -> dict[str, str]:
    """[Setup] directives of the Inno script."""
    out, section = {}, ""
    for line in (WIN / "qwen-tray.iss").read_text().splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1]
        elif section == "Setup" and "=" in s and not s.startswith(";"):
            k, v = s.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def test_iss_is_per_user_and_waits_for_the_daemons_per_user_mutex() -> None:
    """The .iss builds the daemon's mutex name from the token's SID, with the prefix daemon/instance.py uses."""
    import re

    from qwen_tray.instance import MUTEX_PREFIX, mutex_name

    setup = _iss()
    text = (WIN / "qwen-tray.iss").read_text()
    assert setup["AppMutex"] == "{code:DaemonMutex}"
    prefix = re.search(r"MutexPrefix = '([^']*)';", text)
    assert prefix and prefix.group(1) == MUTEX_PREFIX
    assert "Result := MutexPrefix + UserSid;" in text
    assert "OpenProcessToken@advapi32.dll" in text and "GetTokenInformation@advapi32.dll" in text
    assert mutex_name("S-1-5-21-1-2-3-1001") == "Global\\qwen-tray-S-1-5-21-1-2-3-1001"
    assert setup["PrivilegesRequired"] == "lowest"
    assert setup["DefaultDirName"] == r"{localappdata}\Programs\qwen-tray"


def test_iss_version_comes_from_pyproject_and_setup_needs_nothing_installed_first() -> None:
    text = (WIN / "qwen-tray.iss").read_text()
    assert 'ReadIni(Repo + "\\pyproject.toml", "project", "version", "")' in text
    assert not re.search(r"\b\d+\.\d+\.\d+\b", text)  # no version number written here
    low = text.lower()
    assert "powershell" not in low.replace("no powershell", "") and "install.ps1" not in low
    assert "py.exe" not in low and "python.org" not in low  # no Python needed beforehand
    assert 'Source: "{#Stage}\\uv.exe"' in text
    assert "'python install --no-bin --no-registry 3.12'" in text and "'venv --clear --python 3.12 " in text


def test_iss_autostart_is_an_unchecked_task_and_uses_the_same_registry_value() -> None:
    text = (WIN / "qwen-tray.iss").read_text()
    task = next(line for line in text.splitlines() if line.startswith('Name: "autostart"'))
    assert "Flags: unchecked" in task
    assert f"RunKey = '{RUN_KEY}';" in text and f"ApprovedKey = '{APPROVED_KEY}';" in text
    assert f"RunValue = '{VALUE_NAME}';" in text
    # --force: the task was chosen, so it replaces a headless entry instead of failing
    assert ("if WizardIsTaskSelected('autostart') then\n"
            "    RunLogged(InstalledExe('qwen-tray.exe'), 'autostart on --force'") in text


def test_shortcut_and_run_key_start_the_same_program(win_python: Path) -> None:
    """The Start-menu shortcut ({app}\\venv\\Scripts\\qwen-tray-gui.exe run) = what `autostart on` registers."""
    text = (WIN / "qwen-tray.iss").read_text()
    icon = next(line for line in text.splitlines() if line.startswith('Name: "{autoprograms}\\qwen-tray"'))
    assert 'Filename: "{app}\\venv\\Scripts\\qwen-tray-gui.exe"' in icon and 'Parameters: "run"' in icon
    args = windows.launch_args(executable=str(win_python))
    assert Path(args[0]).name == "qwen-tray-gui.exe" and Path(args[0]).parent.parent.name == "venv"
    assert args[1:] == ["run"]


def test_no_python_dash_m_daemon_in_installed_entry_points() -> None:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["qwen-tray"] == "qwen_tray.cli:main"
    assert project["gui-scripts"]["qwen-tray-gui"] == "qwen_tray.cli:main"  # pythonw: no console window
    assert "-m qwen_tray" not in (WIN / "qwen-tray.iss").read_text()
    assert '"-m", "qwen_tray"' not in (REPO / "daemon" / "autostart" / "windows.py").read_text()


def test_every_qwen_tray_command_in_the_installers_exists() -> None:
    """The installers only string `qwen-tray` commands together: each one they call must parse."""
    from qwen_tray.cli import build_parser

    parser = build_parser()
    found = set()
    iss = (WIN / "qwen-tray.iss").read_text()
    found |= {m.group(1) for m in re.finditer(r"InstalledExe\('qwen-tray\.exe'\), '([a-z][a-z -]*[a-z])'", iss)}
    found |= {m.group(1) for m in re.finditer(r'qwen-tray(?:-gui)?\.exe"; Parameters: "([a-z][a-z -]*[a-z])"', iss)}
    found |= {m.group(1) for m in re.finditer(r"Exec\(InstalledExe\('qwen-tray\.exe'\), '([a-z]+)'", iss)}
    for f in (REPO / "installer/linux/install.sh", REPO / "installer/linux/uninstall.sh"):
        text = f.read_text()
        for m in re.finditer(r'-m qwen_tray ([a-z][a-z -]*[a-z])', text):
            found.add(m.group(1))
        for m in re.finditer(r'"\$QT" ([a-z][a-z -]*[a-z])', text):
            found.add(m.group(1))
    for required in ("run", "autostart on", "autostart off", "model pull", "stop"):
        assert any(cmd == required or cmd.startswith(required + " ") for cmd in found), (required, found)
    for cmd in found:
        parser.parse_args(cmd.split())  # SystemExit (a test error) if a command or option is unknown


def test_installed_layout_finds_the_demo_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Installed copies have no tests/ folder: the installers put demo-model beside the venv."""
    import sys

    from qwen_tray import paths

    inst = tmp_path / "qwen-tray"
    (inst / "demo-model").mkdir(parents=True)
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "venv-site" / "daemon" / "paths.py"))
    monkeypatch.setattr(sys, "prefix", str(inst / "venv"))
    monkeypatch.delenv("QWEN_TRAY_DEMO_MODEL", raising=False)
    assert paths.bundled_model_dir() == inst / "demo-model"
    monkeypatch.setenv("QWEN_TRAY_DEMO_MODEL", str(tmp_path / "elsewhere"))
    assert paths.bundled_model_dir() == tmp_path / "elsewhere"


def test_cli_does_not_silently_swap_the_tray_autostart_for_the_headless_one(isolated_user_dirs: Path) -> None:
    desktop = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "qwen-tray.desktop"
    assert _cli("autostart", "on").returncode == 0 and desktop.is_file()
    res = _cli("autostart", "on", "--headless")
    assert res.returncode == 1 and "already on for the tray" in res.stderr and "--force" in res.stderr
    assert desktop.is_file()  # still what starts at login
    assert json.loads(_cli("autostart", "status", "--json").stdout)["mode"] == "tray"
    res = _cli("autostart", "on", "--headless", "--force")
    assert res.returncode == 0 and "autostart: on (headless)" in res.stdout, res.stderr
    assert not desktop.exists()
    assert _cli("autostart", "on").returncode == 1  # and back again only when asked
    assert _cli("autostart", "on", "--headless").returncode == 0  # the same mode again is fine
    assert _cli("autostart", "off").returncode == 0


def test_linux_unit_gives_up_instead_of_restarting_forever(tmp_path: Path) -> None:
    from qwen_tray.autostart.linux import unit_text

    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in unit_text(["/opt/qwen-tray/bin/qwen-tray", "run", "--headless"]).splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            sections.setdefault(current, {})[k] = v
    unit, service = sections["Unit"], sections["Service"]
    assert int(unit["StartLimitBurst"]) <= 5 and int(unit["StartLimitIntervalSec"]) >= 60  # [Unit], where it counts
    assert service["Restart"] == "on-failure"
    assert set(service["RestartPreventExitStatus"].split()) == {"1", "2"}  # config error / already running
    f = tmp_path / "qwen-tray.service"
    f.write_text(unit_text([sys.executable, "-m", "qwen_tray", "run", "--headless"]))
    res = subprocess.run(["systemd-analyze", "verify", str(f)], capture_output=True, text=True)
    assert res.returncode == 0 and "Unknown key" not in res.stderr, res.stderr
