"""Shared test fixtures: the tiny model and an isolated per-user environment.

Every test gets its own config/data/cache/state/runtime dirs (XDG_* on Linux),
so nothing touches the real user's files and tests do not see each other's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
TINY_OV = FIXTURES / "tiny-qwen3-vl-ov"
TINY_HF = FIXTURES / "tiny-qwen3-vl-hf"
ARTIFACTS = REPO / "tests" / "artifacts"  # screenshots and logs a person can look at (git-ignored)

# Desktop fixtures (xvfb_display, xvfb_tray) from tests/xvfb.py, available to every test module by name;
# in-process Tk fixtures (ui_display, tk_root, scheduler, recorder) from tests/uitools.py.
pytest_plugins = ["xvfb", "uitools"]


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every per-user directory at a fresh temp folder for this test."""
    home = tmp_path / "home"
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_RUNTIME_DIR", "runtime"),
    ):
        d = home / sub
        d.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(d))
    (home / "runtime").chmod(0o700)
    monkeypatch.delenv("QWEN_TRAY_CONFIG", raising=False)
    monkeypatch.delenv("QWEN_TRAY_CONNECTION", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The committed tiny Qwen3-VL OpenVINO IR."""
    assert (TINY_OV / "openvino_language_model.xml").is_file(), "run tests/fixtures/make_tiny_model.py"
    return TINY_OV


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def qwen_tray_cmd() -> list[str]:
    """How tests run the CLI in a subprocess: the venv's interpreter, as `python -m daemon`."""
    return [sys.executable, "-m", "daemon"]


def subprocess_env() -> dict[str, str]:
    """The current (isolated) environment, for child processes."""
    return dict(os.environ)
