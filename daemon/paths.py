"""Every per-user path the program uses, from platformdirs, in one place.

Why one module: `qwen-tray config` prints them all, tests redirect them all by
setting XDG_* variables (Linux) and nothing else needs to know the platform rules.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

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
        }


def default_paths(config_file: Path | None = None) -> Paths:
    """Resolve paths now (not at import) so tests can change the environment first."""
    env_cfg = os.environ.get("QWEN_TRAY_CONFIG")
    cfg = config_file or (Path(env_cfg) if env_cfg else Path(platformdirs.user_config_dir(APP, False)) / "config.toml")
    if os.name == "posix" and not os.environ.get("XDG_RUNTIME_DIR"):
        # No per-login tmpfs (a container, a cron job): keep runtime files in the
        # private state dir rather than platformdirs' shared /tmp fallback.
        runtime = str(Path(platformdirs.user_state_dir(APP, False)) / "run")
    else:
        runtime = platformdirs.user_runtime_dir(APP, False)
    return Paths(
        config_file=cfg,
        models_dir=Path(platformdirs.user_data_dir(APP, False)) / "models",
        cache_dir=Path(platformdirs.user_cache_dir(APP, False)) / "compiled",
        log_dir=Path(platformdirs.user_log_dir(APP, False)),
        runtime_dir=Path(runtime),
    )


def bundled_model_dir() -> Path:
    """The tiny demo model: $QWEN_TRAY_DEMO_MODEL, the source tree's tests/fixtures, or `demo-model` beside the venv.

    An installed copy has no tests/ folder, so the installers copy the demo model
    next to the venv they create (`<install dir>/venv` + `<install dir>/demo-model`).
    """
    env = os.environ.get("QWEN_TRAY_DEMO_MODEL")
    if env:
        return Path(env)
    source = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tiny-qwen3-vl-ov"
    installed = Path(sys.prefix).parent / "demo-model"
    return installed if not source.is_dir() and installed.is_dir() else source
