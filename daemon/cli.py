"""`qwen-tray` command line: one parser, one module per command family.

Each module in `daemon/commands/` has `register(subparsers)`; the function it
sets as `func` takes the parsed args and returns the exit code. Expected
failures (config, missing model, bad image, daemon not running) are raised as
`UserError` or a known error type and printed as one sentence, never a traceback.
Without a console (pythonw: the Run key, the Start-menu entry) `sys.stderr` is None:
then every error, expected or not, goes to the log file (with its traceback) and,
on Windows, to a message box, so a broken config never fails silently.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__, privacy  # noqa: F401 - privacy first: OpenVINO telemetry off
from .commands import UserError

log = logging.getLogger("qwen_tray.cli")

# One entry per command module in daemon/commands/; add a line to add a command family.
COMMAND_MODULES = (
    "config_cmd",
    "model_cmd",
    "ask_cmd",
    "service_cmd",
    "autostart_cmd",
    "logs_cmd",
    "api_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qwen-tray",
        description="A local screen assistant: Qwen3-VL on OpenVINO (NPU, GPU or CPU), a hotkey popup and a local API.",
    )
    parser.add_argument("--version", action="version", version=f"qwen-tray {__version__}")
    parser.add_argument("--config", metavar="FILE", help="config file (default: the per-user config.toml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.set_defaults(func=lambda _args: parser.print_help() or 0)  # `qwen-tray` alone: the help, not an error
    for name in COMMAND_MODULES:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


def show_message_box(title: str, text: str) -> None:
    """An error the user must see when there is no console (Windows: a message box; elsewhere: nothing more)."""
    if sys.platform != "win32":
        return
    try:
        from qwen_tray_client import win32

        win32.call("MessageBoxW", None, text, title,
                   win32.MB_OK | win32.MB_ICONERROR | win32.MB_SETFOREGROUND | win32.MB_TOPMOST)
    except Exception:  # pragma: no cover - the log has it already
        log.debug("no message box", exc_info=True)


def _log_to_file() -> str:
    """Make sure the log file receives records (the daemon may have failed before setting logging up).

    Returns the log file's path for the message.
    """
    import logging.handlers

    from .logs import FORMAT, PrivateRotatingFileHandler, private_dir
    from .paths import default_paths

    root = logging.getLogger()
    for h in root.handlers:
        if isinstance(h, logging.handlers.RotatingFileHandler):  # the one qwen_tray.logs sets up
            return str(h.baseFilename)
    log_file = default_paths().log_file
    try:
        private_dir(log_file.parent)  # the user's alone, as qwen_tray.logs makes it
        handler = PrivateRotatingFileHandler(log_file, maxBytes=1_000_000, backupCount=5, encoding="utf-8")
    except OSError:
        return "(no log file could be opened)"
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.qwen_tray_startup = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return str(log_file)


def _report(message: str, exc: BaseException | None = None) -> None:
    """One error for the user: on stderr, or, without one (pythonw: Run key, Start menu), in the log and a box."""
    if sys.stderr is not None:
        print(message, file=sys.stderr)
        return
    where = _log_to_file()
    if exc is not None:
        log.error("%s", message, exc_info=exc)
    else:
        log.error("%s", message)
    show_message_box("qwen-tray", f"{message}\n\nDetails: {where}")


def main(argv: Sequence[str] | None = None) -> int:
    from .config import ConfigError
    from .engine.base import EngineError
    from .engine.export import ExportError
    from .engine.store import ModelNotFound
    from .images import ImageRejected

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed its message, unless there is no stderr to print on
        if exc.code and sys.stderr is None:
            _report(f"qwen-tray: error: the command line {' '.join(argv or sys.argv[1:])!r} is not valid")
        raise
    try:
        return int(args.func(args) or 0)
    except (UserError, ConfigError, EngineError, ExportError, ModelNotFound, ImageRejected) as exc:
        _report(f"qwen-tray: error: {exc}")
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        _report("qwen-tray: interrupted")
        return 130
    except Exception as exc:
        if sys.stderr is not None:
            raise  # a console shows the traceback
        _report(f"qwen-tray: unexpected error: {type(exc).__name__}: {exc}", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
