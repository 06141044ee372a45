"""Every per-user path the program uses, from platformdirs, in one place.

Why one module: `qwen-tray config` prints them all, tests redirect them all by
setting XDG_* variables (Linux) and nothing else needs to know the platform rules.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

APP = "qwen-tray"


@dataclass(frozen=True)
class Paths:
    """Where config, models, compile cache, logs and the runtime files live."""

    config_file: Path
    models_dir: Path
    cache_dir: Path
    log_dir: Path
    runtime_dir: Path

    @property
    def log_file(self) -> Path:
        return self.log_dir / "qwen-tray.log"

    @property
    def connection_file(self) -> Path:
        override = os.environ.get("QWEN_TRAY_CONNECTION")
        return Path(override) if override else self.runtime_dir / "connection.json"

    @property
    def api_key_file(self) -> Path:
        """The HTTP API's bearer key: made at first start, kept across restarts, readable by the user alone."""
        return self.models_dir.parent / "api-key"

    @property
    def lock_file(self) -> Path:
        return self.runtime_dir / "qwen-tray.lock"

    def as_dict(self) -> dict[str, str]:
        return {
            "config": str(self.config_file),
            "models": str(self.models_dir),
            "cache": str(self.cache_dir),
            "logs": str(self.log_dir),
            "log_file": str(self.log_file),
            "runtime": str(self.runtime_dir),
            "connection": str(self.connection_file),
            "api_key": str(self.api_key_file),
        }


def runtime_dir(dirs: Any = None) -> Path:
    """Where the connection file and the lock live: the client's rule (`qwen_tray_client.connection.runtime_dir`),
    so a client without this package finds the daemon. `dirs` only says which platform's rule (for tests)."""
    from qwen_tray_client.connection import runtime_dir as client_rule

    return client_rule(windows=_is_windows(dirs) if dirs is not None else None)


def _is_windows(dirs: Any) -> bool:
    from platformdirs.windows import Windows

    return isinstance(dirs, Windows)


def default_paths(config_file: Path | None = None, dirs: Any = None) -> Paths:
    """Resolve paths now (not at import) so tests can change the environment first.

    `dirs` is a platformdirs object (default: this platform's), so a test can resolve Windows' rules on Linux.
    """
    dirs = dirs if dirs is not None else platformdirs.PlatformDirs(APP, False)
    env_cfg = os.environ.get("QWEN_TRAY_CONFIG")
    cfg = config_file or (Path(env_cfg) if env_cfg else Path(dirs.user_config_dir) / "config.toml")
    return Paths(
        config_file=cfg,
        models_dir=Path(dirs.user_data_dir) / "models",
        cache_dir=Path(dirs.user_cache_dir) / "compiled",
        log_dir=Path(dirs.user_log_dir),
        runtime_dir=runtime_dir(dirs),
    )


DEMO_MODEL = "demo-qwen3-vl-ov"  # tests/fixtures/make_demo_model.py: names an image's main colour


def bundled_model_dir() -> Path:
    """The tiny demo model: $QWEN_TRAY_DEMO_MODEL, the source tree's tests/fixtures, or `demo-model` beside the venv.

    It is trained to name the image's dominant colour and to say it is the demo model, so a first
    answer is a true sentence about the screen. An installed copy has no tests/ folder, so the
    installers copy it next to the venv they create (`<install dir>/venv` + `<install dir>/demo-model`).
    """
    env = os.environ.get("QWEN_TRAY_DEMO_MODEL")
    if env:
        return Path(env)
    source = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / DEMO_MODEL
    installed = Path(sys.prefix).parent / "demo-model"
    return installed if not source.is_dir() and installed.is_dir() else source
