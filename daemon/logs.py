"""Logging to a rotating per-user file (and stderr), set up once per process.

Why rotation: the daemon runs for weeks; a log that only grows is a bug.
Privacy: nothing here logs content; callers log questions and answers only at DEBUG.
Even so the folder is the user's alone (0700) and every log file is created 0600.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files only the user can read (0600, also a file left by an older version)."""

    def _open(self):  # type: ignore[no-untyped-def]  # the one hook logging.FileHandler offers for opening
        # O_BINARY (Windows): the text layer above already writes \r\n; a text-mode fd would double the \r
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o600)
        if os.name == "posix":
            os.fchmod(fd, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # noqa: SIM115 - the handler owns it


def private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it the user's alone: 0700 even if it existed before."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        path.chmod(0o700)


def setup_logging(log_file: Path | None, level: str = "INFO", stderr: bool = True) -> None:
    """Root logger to `log_file` (1 MB x 5 files) and optionally stderr."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    fmt = logging.Formatter(FORMAT)
    if log_file is not None:
        private_dir(log_file.parent)
        fh = PrivateRotatingFileHandler(log_file, maxBytes=1_000_000, backupCount=5, encoding="utf-8")
        fh.setFormatter(fmt)
        root.addHandler(fh)
    if stderr and sys.stderr is not None:  # pythonw has no stderr
        sh = logging.StreamHandler()
        sh.setFormatter(fmt)
        root.addHandler(sh)
    for noisy in ("nncf", "urllib3", "PIL", "markdown_it"):  # markdown_it: a DEBUG line per parser rule and line
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RepeatedFailure:
    """One request's failures of one kind: the first is logged (with its traceback), the rest only counted,
    and `summary()` logs the count once when the request ends.

    Why: a failure that repeats per token (a closed socket, a broken sink) would otherwise log thousands of
    identical tracebacks per answer, and the rotating log would drop the history that explains it.
    """

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log = logger
        self._what = what
        self.count = 0

    def failed(self, exc: BaseException | str) -> None:
        self.count += 1
        if self.count == 1:
            self._log.error("%s failed: %s (repeats are counted, not logged)", self._what, exc,
                            exc_info=exc if isinstance(exc, BaseException) else None)

    def summary(self) -> None:
        """Log how often it failed in all (once; nothing when it failed at most once)."""
        if self.count > 1:
            self._log.error("%s failed %d times in all", self._what, self.count)
        self.count = 0
