"""`qwen-tray logs [-n N] [-f] [--path]`: the last lines of the log (like `journalctl -n`), or follow it.

Following survives rotation (the daemon's RotatingFileHandler renames the file
to `.1` at 1 MB): when the file's identity changes, the rest of the old file is
read from `.1` and the new one from its start. The file is reopened on every
read instead of held open, because on Windows an open handle would stop the
daemon from renaming it. A short sleep between empty reads is fine here: this
is a foreground command someone is watching, not the resident process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import TextIO

from ..safetext import printable
from . import context, pipe_safe

POLL_SECONDS = 0.25


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="print the last lines of the log; -f follows it")
    p.add_argument("-f", "--follow", action="store_true", help="print the last lines, then new ones as they come")
    p.add_argument("-n", "--lines", type=int, default=10, metavar="N", help="how many last lines (default 10)")
    p.add_argument("--path", action="store_true", help="print only the log file's path")
    p.set_defaults(func=pipe_safe(run))


def run(args: argparse.Namespace) -> int:
    paths, _ = context(args)
    log_file = paths.log_file
    if args.path:
        print(log_file)
        return 0
    if not args.follow:
        if not log_file.exists():
            print(f"no log yet at {log_file}: it is written once qwen-tray runs", file=sys.stderr)
            return 0
        _copy(log_file, tail_start(log_file, max(0, args.lines)), sys.stdout)
        return 0
    print(f"==> {log_file} <==", file=sys.stderr, flush=True)
    if not log_file.exists():
        print("(waiting for the log file to appear)", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        follow(log_file, sys.stdout, max(0, args.lines))
    return 0


def tail_start(path: Path, lines: int) -> int:
    """Byte offset where the last `lines` lines of `path` begin (reads only the end of a big file)."""
    size = path.stat().st_size
    if lines <= 0:
        return size
    data, pos = b"", size
    with path.open("rb") as f:
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(8192, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    idx = len(data) - (1 if data.endswith(b"\n") else 0)
    for _ in range(lines):
        idx = data.rfind(b"\n", 0, idx)
        if idx < 0:
            return pos
    return pos + idx + 1


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _copy(path: Path, start: int, out: TextIO) -> int:
    """Write the bytes of `path` from `start` to `out`; return the new offset."""
    with path.open("rb") as f:
        f.seek(start)
        data = f.read()
    if data:
        out.write(printable(data.decode("utf-8", errors="replace")))  # a question's ESC must not reach the terminal
        out.flush()
    return start + len(data)


def follow(path: Path, out: TextIO, lines: int = 10, stop: threading.Event | None = None,
           poll: float = POLL_SECONDS) -> None:
    """Print the last `lines` lines of `path`, then everything appended, until `stop` is set (or forever)."""
    stop = stop or threading.Event()
    ident: tuple[int, int] | None = None
    pos = 0
    if path.exists():
        st = path.stat()
        ident, pos = _identity(st), tail_start(path, lines)
    while not stop.is_set():
        try:
            st = path.stat()
        except FileNotFoundError:
            stop.wait(poll)
            continue
        if ident is not None and _identity(st) != ident:
            rotated = path.with_name(path.name + ".1")
            try:
                if _identity(rotated.stat()) == ident:
                    _copy(rotated, pos, out)
            except FileNotFoundError:
                pass
            pos = 0
        ident = _identity(st)
        if st.st_size < pos:  # truncated in place
            pos = 0
        if st.st_size > pos:
            try:
                pos = _copy(path, pos, out)
            except FileNotFoundError:
                continue
        else:
            stop.wait(poll)
