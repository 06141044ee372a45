"""Logging to a rotating per-user file (and stderr), set up once per process.

Why rotation: the daemon runs for weeks; a log that only grows is a bug.
Privacy: nothing here logs content; callers log questions and answers only at DEBUG.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"


def setup_logging(log_file: Path | None, level: str = "INFO", stderr: bool = True) -> None:
    """Root logger to `log_file` (1 MB x 5 files) and optionally stderr."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    fmt = logging.Formatter(FORMAT)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(log_file, maxBytes=1_000_000, backupCount=5, encoding="utf-8")
        fh.setFormatter(fmt)
        root.addHandler(fh)
    if stderr and sys.stderr is not None:  # pythonw has no stderr
        sh = logging.StreamHandler()
        sh.setFormatter(fmt)
        root.addHandler(sh)
    for noisy in ("nncf", "urllib3", "PIL"):
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
