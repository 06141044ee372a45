"""The Linux installer end to end, in a temporary HOME: install, run the installed copy, autostart, uninstall.

The fast, honest path: `install.sh --deps-from <this venv's python>` builds a real
venv under ~/.local/share/qwen-tray and installs qwen-tray into it from a copy of
the source (a real wheel, not editable); only the heavy dependencies (OpenVINO &
co.) are read from this venv through a .pth file instead of being downloaded again.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "installer" / "linux" / "install.sh"
UNINSTALL = REPO / "installer" / "linux" / "uninstall.sh"
# Shared XDG base folders the program may create in an empty HOME; never removed (other programs use them).
GENERIC_DIRS = {".config", ".cache", ".local", ".local/share", ".local/state"}
# The user's own files in the folders qwen-tray also writes to, made before the install: the uninstaller must leave
# them exactly as they were. ~/intel is another OpenVINO program's (qwen-tray keeps OpenVINO's telemetry off and
# never writes there).
FOREIGN = {
    ".config/autostart/other-app.desktop": "[Desktop Entry]\nType=Application\nName=Other\nExec=other\n",
    ".local/bin/other-tool": "#!/bin/sh\necho other\n",
    ".local/share/applications/other.desktop": "[Desktop Entry]\nType=Application\nName=Other\nExec=other\n",
    ".cache/other-app/data": "cache of another program\n",
    "intel/openvino_telemetry": "1",
}


def _env(home: Path) -> dict[str, str]:
    """A login-like environment: HOME only, no XDG overrides (the defaults are what users have), no display."""
    return {"HOME": str(home), "PATH": f"{home}/.local/bin:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _run(args: list[str], home: Path, stdin: int | None = subprocess.DEVNULL, timeout: float = 300
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=_env(home), stdin=stdin, capture_output=True, text=True, timeout=timeout,
                          cwd=home)


def _files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*") if not p.is_dir()}


def _dirs(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*") if p.is_dir() and not p.is_symlink()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One install per module (it is the slow part): returns the temporary HOME."""
    home = tmp_path_factory.mktemp("installer") / "home"
    home.mkdir()
    for rel, text in FOREIGN.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(text)
    res = _run(["bash", str(INSTALL), "--deps-from", sys.executable, "--autostart"], home)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "installed qwen-tray" in res.stdout
    assert "Traceback" not in res.stderr
    # The next steps it prints are commands that work as printed (~/.local/bin is on this login PATH).
    assert "\n    qwen-tray status " in res.stdout and "\n    qwen-tray run " in res.stdout
    status = _run(["bash", "-c", "qwen-tray status"], home)
    assert status.returncode == 3 and "not running" in status.stderr, status.stderr
    return home


def test_installed_copy_runs_from_its_own_venv(installed: Path) -> None:
    home = installed
    prefix = home / ".local/share/qwen-tray"
    qt = home / ".local/bin/qwen-tray"
    assert qt.is_symlink() and qt.resolve() == (prefix / "venv/bin/qwen-tray").resolve()
    res = _run([str(qt), "--version"], home)
    assert res.returncode == 0 and res.stdout.startswith("qwen-tray ") and "+src" not in res.stdout, res.stderr
    probe = ("import qwen_tray, qwen_tray.paths as p, importlib.metadata as m; "
             "print(daemon.__file__); print(p.bundled_model_dir()); print(m.version('qwen-tray'))")
    out = _run([str(prefix / "venv/bin/python"), "-I", "-c", probe], home).stdout.splitlines()
    assert Path(out[0]).is_relative_to(prefix / "venv")  # not the checkout, not the dev venv
    assert Path(out[1]) == prefix / "demo-model"  # the installed copy finds its demo model
    assert out[2] == res.stdout.split()[1]
    assert not (prefix / "app" / "build").exists()  # build leftovers cleaned
    # The installed copy really runs the (demo) model with OpenVINO.
    res = _run([str(qt), "model", "verify", str(prefix / "demo-model")], home, timeout=180)
    assert res.returncode == 0 and "generate: ok" in res.stdout, res.stdout + res.stderr


def test_launcher_and_autostart_entries_validate(installed: Path) -> None:
    home = installed
    launcher = home / ".local/share/applications/qwen-tray.desktop"
    auto = home / ".config/autostart/qwen-tray.desktop"
    for f in (launcher, auto):
        res = subprocess.run(["desktop-file-validate", str(f)], capture_output=True, text=True)
        assert res.returncode == 0 and res.stdout.strip() == "", f"{f}: {res.stdout}"
        exec_line = next(x for x in f.read_text().splitlines() if x.startswith("Exec="))
        assert exec_line == f"Exec={home}/.local/share/qwen-tray/venv/bin/qwen-tray run"
    assert (home / ".local/share/icons/hicolor/scalable/apps/qwen-tray.svg").is_file()


def test_autostart_on_off_status_agree_with_the_files(installed: Path) -> None:
    home = installed
    qt = str(home / ".local/bin/qwen-tray")
    desktop = home / ".config/autostart/qwen-tray.desktop"
    unit = home / ".config/systemd/user/qwen-tray.service"
    link = home / ".config/systemd/user/default.target.wants/qwen-tray.service"

    def status() -> dict:
        res = _run([qt, "autostart", "status", "--json"], home)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    st = status()  # --autostart at install time
    assert st["enabled"] and st["mode"] == "tray" and st["where"] == str(desktop) and desktop.is_file()
    assert _run([qt, "autostart", "off"], home).returncode == 0
    assert not desktop.exists() and status()["enabled"] is False
    assert _run([qt, "autostart", "on", "--headless"], home).returncode == 0
    st = status()
    assert st["enabled"] and st["mode"] == "headless" and st["where"] == str(unit)
    assert unit.is_file() and link.is_symlink() and not desktop.exists()
    assert f'"{home}/.local/share/qwen-tray/venv/bin/qwen-tray" "run" "--headless"' in unit.read_text()
    res = _run([qt, "autostart", "on"], home)  # switching kinds must be asked for...
    assert res.returncode == 1 and "--force" in res.stderr and unit.is_file()
    assert _run([qt, "autostart", "on", "--force"], home).returncode == 0  # ...then back to the tray: the unit goes
    st = status()
    assert st["enabled"] and st["mode"] == "tray" and not unit.exists() and not link.exists()


def test_uninstall_keeps_data_unless_purged_and_leaves_nothing_behind(installed: Path) -> None:
    # Runs last in this module (pytest keeps file order): it removes the installation.
    home = installed
    prefix = home / ".local/share/qwen-tray"
    model = prefix / "models" / "Qwen3-VL-4B-Instruct-int4"
    model.mkdir(parents=True)
    (model / "openvino_language_model.bin").write_bytes(b"\0" * 1024)
    config = home / ".config/qwen-tray/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[model]\npath = ""\n')
    for f in (home / ".local/state/qwen-tray/log/qwen-tray.log", home / ".cache/qwen-tray/compiled/blob"):
        f.parent.mkdir(parents=True)
        f.write_text("x")

    # 1. In a terminal it asks; answering no keeps models and settings.
    master, slave = pty.openpty()
    os.write(master, b"n\n")
    try:
        res = _run(["bash", str(prefix / "uninstall.sh")], home, stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Your models and settings:" in res.stdout and "Kept your models and settings" in res.stdout
    gone = [prefix / "venv", prefix / "app", prefix / "demo-model", prefix / "uninstall.sh",
            home / ".local/bin/qwen-tray", home / ".local/share/applications/qwen-tray.desktop",
            home / ".local/share/icons/hicolor/scalable/apps/qwen-tray.svg",
            home / ".config/autostart/qwen-tray.desktop", home / ".local/state/qwen-tray", home / ".cache/qwen-tray"]
    for p in gone:
        assert not (p.exists() or p.is_symlink()), f"{p} is still there"
    assert (model / "openvino_language_model.bin").is_file() and config.is_file()

    # 2. With no terminal and no --purge it keeps them without asking, and says where.
    res = _run(["bash", str(UNINSTALL)], home)
    assert res.returncode == 0, res.stderr
    assert "Delete them too?" not in res.stdout + res.stderr
    assert str(prefix / "models") in res.stdout and str(config.parent) in res.stdout
    assert model.is_dir() and config.is_file()

    # 3. --purge deletes them without asking; nothing of qwen-tray is left anywhere in HOME.
    res = _run(["bash", str(UNINSTALL), "--purge"], home)
    assert res.returncode == 0, res.stderr
    assert _files(home) == set(FOREIGN), _files(home) ^ set(FOREIGN)
    assert all((home / rel).read_text() == text for rel, text in FOREIGN.items())  # untouched
    foreign_dirs = {str(p) for rel in FOREIGN for p in Path(rel).parents if str(p) != "."}
    assert _dirs(home) <= GENERIC_DIRS | foreign_dirs, _dirs(home) - GENERIC_DIRS - foreign_dirs
    assert not any("qwen" in p for p in _files(home) | _dirs(home))


def test_interactive_install_asks_about_login_then_reinstall_upgrades_in_place(tmp_path: Path) -> None:
    home = tmp_path / "term-home"
    home.mkdir()
    master, slave = pty.openpty()
    os.write(master, b"y\n")  # "Start qwen-tray when you log in? [y/N]"
    try:
        res = _run(["bash", str(INSTALL), "--deps-from", sys.executable, "--no-start"], home, stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Start qwen-tray when you log in?" in res.stderr
    desktop = home / ".config/autostart/qwen-tray.desktop"
    assert desktop.is_file()
    manifest = (home / ".local/share/qwen-tray/install-manifest.txt").read_text()
    # Running it again (no terminal now) reuses the venv, asks nothing, and forgets none of the created folders.
    res = _run(["bash", str(INSTALL), "--deps-from", sys.executable], home)
    assert res.returncode == 0, res.stderr
    assert "creating a Python environment" not in res.stdout and "log in?" not in res.stderr
    after = (home / ".local/share/qwen-tray/install-manifest.txt").read_text()
    assert set(manifest.splitlines()) <= set(after.splitlines())
    assert desktop.is_file()  # a re-install leaves the user's start-at-login choice alone
    # A broken install (venv gone): uninstall falls back to the XDG defaults and still removes everything.
    shutil.rmtree(home / ".local/share/qwen-tray/venv")
    res = _run(["bash", str(home / ".local/share/qwen-tray/uninstall.sh"), "--purge"], home)
    assert res.returncode == 0, res.stderr
    assert not any("qwen" in p for p in _files(home) | _dirs(home))


def test_install_without_bin_on_path_prints_commands_with_the_full_path(tmp_path: Path) -> None:
    home = tmp_path / "no-path-home"
    home.mkdir()
    env = {**_env(home), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    res = subprocess.run(["bash", str(INSTALL), "--deps-from", sys.executable, "--no-autostart"], env=env,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, cwd=home)
    assert res.returncode == 0, res.stdout + res.stderr
    full = f"{home}/.local/bin/qwen-tray"
    assert f"\n    {full} status " in res.stdout and "is not on your PATH" in res.stderr
    status = subprocess.run([full, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 3, status.stderr
    res = subprocess.run(["bash", str(home / ".local/share/qwen-tray/uninstall.sh"), "--purge"], env=env,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=home)
    assert res.returncode == 0 and not any("qwen" in p for p in _files(home) | _dirs(home)), res.stderr


def test_repo_launcher_runs_the_checkouts_venv_even_through_a_symlink(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".venv" / "bin").mkdir(parents=True)
    shutil.copy2(REPO / "qwen-tray", checkout / "qwen-tray")
    alone = subprocess.run([str(checkout / "qwen-tray"), "status"], capture_output=True, text=True, timeout=60)
    assert alone.returncode == 1 and "installer/dev-setup.sh" in alone.stderr  # not set up: says what to run
    (checkout / ".venv" / "bin" / "qwen-tray").symlink_to(Path(sys.executable).parent / "qwen-tray")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "qwen-tray").symlink_to(checkout / "qwen-tray")
    res = subprocess.run([str(tmp_path / "bin" / "qwen-tray"), "--version"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("qwen-tray "), res.stderr


def test_install_refuses_deps_from_a_python_without_them(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    home.mkdir()
    res = _run(["bash", str(INSTALL), "--deps-from", "/usr/bin/python3"], home, timeout=60)
    assert res.returncode == 1
    assert "cannot import openvino" in res.stderr
    assert not (home / ".local").exists()  # nothing half-installed


def test_installer_scripts_pass_shellcheck() -> None:
    res = subprocess.run(["shellcheck", "--severity=warning", str(INSTALL), str(UNINSTALL)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout
