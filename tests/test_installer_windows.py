"""The Windows Setup's build script and its Wine probe, checked without Wine (CI does not run build.sh: it
installs Wine and fetches Inno Setup; `bash installer/windows/build.sh --check` is run by hand, see
docs/install.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WIN = REPO / "installer" / "windows"


def test_build_script_passes_shellcheck() -> None:
    res = subprocess.run(["shellcheck", "--severity=warning", str(WIN / "build.sh")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_build_script_reads_the_version_pyproject_has() -> None:
    """build.sh names the wheel and the Setup from pyproject's version with sed; the .iss with ISPP's ReadIni."""
    script = (WIN / "build.sh").read_text()
    sed = re.search(r"VERSION=\$\(sed -n '([^']+)'", script)
    assert sed
    out = subprocess.run(["sed", "-n", sed.group(1), str(REPO / "pyproject.toml")], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    assert out[:1] == [tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]]


def test_the_wine_probe_compiles_for_windows(tmp_path: Path) -> None:
    """The stand-in for uv.exe that build.sh --check puts in the Setup (mingw-w64, installed by dev-setup.sh)."""
    exe = tmp_path / "cmdlog.exe"
    subprocess.run(["x86_64-w64-mingw32-gcc", "-municode", "-O1", "-Wall", "-Werror", "-o", str(exe),
                    str(WIN / "probe" / "cmdlog.c"), "-ladvapi32"], check=True, timeout=120)
    assert exe.read_bytes()[:2] == b"MZ"


def test_setup_ships_the_demo_model_the_daemon_looks_for() -> None:
    from qwen_tray.paths import DEMO_MODEL

    iss = (WIN / "qwen-tray.iss").read_text()
    assert f'Source: "{{#Repo}}\\tests\\fixtures\\{DEMO_MODEL}\\*"; DestDir: "{{app}}\\demo-model"' in iss
    assert (REPO / "tests" / "fixtures" / DEMO_MODEL / "openvino_language_model.xml").is_file()
