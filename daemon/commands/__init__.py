"""Command implementations for `qwen-tray`; shared helpers for them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import Config, load_config
from ..paths import Paths, default_paths


class UserError(RuntimeError):
    """A failure the user can fix; printed as one sentence with exit code `exit_code`."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def context(args: argparse.Namespace) -> tuple[Paths, Config]:
    """Paths and validated config for this invocation (`--config` overrides the file)."""
    paths = default_paths(Path(args.config) if getattr(args, "config", None) else None)
    return paths, load_config(paths.config_file)
