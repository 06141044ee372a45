"""`qwen-tray` command line: one parser, one module per command family.

Each module in `daemon/commands/` has `register(subparsers)`; the function it
sets as `func` takes the parsed args and returns the exit code. Expected
failures (config, missing model, bad image, daemon not running) are raised as
`UserError` or a known error type and printed as one sentence, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .commands import UserError

# One entry per command module in daemon/commands/; add a line to add a command family.
COMMAND_MODULES = (
    "config_cmd",
    "model_cmd",
    "ask_cmd",
    "service_cmd",
    "autostart_cmd",
    "logs_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qwen-tray",
        description="A local screen assistant: Qwen3-VL on OpenVINO (NPU, GPU or CPU), a hotkey popup and a local API.",
    )
    parser.add_argument("--version", action="version", version=f"qwen-tray {__version__}")
    parser.add_argument("--config", metavar="FILE", help="config file (default: the per-user config.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .config import ConfigError
    from .engine.base import EngineError
    from .engine.export import ExportError
    from .engine.store import ModelNotFound
    from .images import ImageRejected

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ConfigError, EngineError, ExportError, ModelNotFound, ImageRejected) as exc:
        print(f"qwen-tray: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print("qwen-tray: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
