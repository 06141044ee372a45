"""Command implementations for `qwen-tray`; shared helpers for them."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..config import Config, load_config
from ..paths import Paths, default_paths


class UserError(RuntimeError):
    """A failure the user can fix; printed as one sentence with exit code `exit_code`."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def config_override(args: argparse.Namespace) -> Path | None:
    """The `--config FILE` given, which must exist: a mistyped path must not silently mean "all defaults"."""
    given = getattr(args, "config", None)
    if not given:
        return None
    path = Path(given).expanduser()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise UserError(f"--config {given}: {what}; give an existing TOML file, or leave --config out to use "
                        f"{default_paths().config_file}")
    return path


def context(args: argparse.Namespace) -> tuple[Paths, Config]:
    """Paths and validated config for this invocation (`--config` overrides the file)."""
    paths = default_paths(config_override(args))
    return paths, load_config(paths.config_file)


def pipe_safe(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Let `qwen-tray status | head -1` end quietly: a reader that goes away is not an error.

    Output is flushed inside the guard (so the interpreter's final flush cannot fail later), and
    stdout is pointed at the null device so nothing else tries to write to the closed pipe.
    Exit code 0, as the reader got what it asked for (like ripgrep, unlike `yes`).
    """

    @functools.wraps(func)
    def guarded(args: argparse.Namespace) -> int:
        try:
            rc = func(args)
            if sys.stdout is not None:  # None under pythonw (no console)
                sys.stdout.flush()
            return rc
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return 0

    return guarded
