"""`qwen-tray run | status | stop`: the resident service and how to reach it.

`run --headless` serves the ZeroMQ API until SIGTERM, Ctrl+C or `qwen-tray stop`.
`run` without it hands an unstarted `Service` to the desktop app
(`daemon/app.py`: `run_desktop(service, paths, cfg)`), which serves headless
itself when there is no display.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from ..paths import Paths
from . import UserError, context, pipe_safe

log = logging.getLogger(__name__)

EXIT_NOT_RUNNING = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="start the resident service (tray, hotkeys and the local API)")
    p.add_argument("--headless", action="store_true", help="no tray, popup or hotkeys: only the local API")
    p.set_defaults(func=run)

    s = sub.add_parser("status", help="is the service running, and on which device")
    s.add_argument("--json", action="store_true", help="print the status event as JSON")
    s.set_defaults(func=pipe_safe(run_status))

    t = sub.add_parser("stop", help="stop the running service")
    t.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for it to exit")
    t.set_defaults(func=pipe_safe(run_stop))


# ---------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    paths, cfg = context(args)
    from ..logs import setup_logging

    setup_logging(paths.log_file, cfg.log.level)
    desktop = None if args.headless else _desktop_entry()
    if desktop is None:
        return run_headless(paths, cfg)
    from ..instance import AlreadyRunning
    from ..service import Service

    service = Service(paths, cfg)
    try:
        with _stop_on_signals(service):  # the desktop installs its own while its loop runs
            return int(desktop(service, paths, cfg) or 0)
    except AlreadyRunning as exc:
        log.info("a second `qwen-tray run` (pid %d) was refused: %s", os.getpid(), exc)
        raise UserError(str(exc), exit_code=1) from None
    finally:
        service.stop()  # a no-op (and silent) when it never started


def run_headless(paths: Paths, cfg: Config) -> int:
    """Serve the local API until a signal or `qwen-tray stop`; the main thread waits, the work is on threads."""
    service = _start_service(paths, cfg)
    try:
        with _stop_on_signals(service):
            if os.name == "nt":  # Ctrl+C reaches Python only between timed waits on Windows
                while not service.wait(1.0):
                    pass
            else:
                service.wait()
    finally:
        service.stop()
    return service.exit_code


def _start_service(paths: Paths, cfg: Config) -> Any:
    from ..instance import AlreadyRunning
    from ..service import Service

    service = Service(paths, cfg)
    try:
        service.start()
    except AlreadyRunning as exc:
        log.info("a second `qwen-tray run` (pid %d) was refused: %s", os.getpid(), exc)
        raise UserError(str(exc), exit_code=1) from None
    return service


def _desktop_entry() -> Callable[..., int] | None:
    """`qwen_tray.app.run_desktop(service, paths, cfg)` when the desktop app is installed.

    It starts the (not yet started) service itself, and serves headless when there is no display.
    """
    if importlib.util.find_spec("qwen_tray.app") is None:
        return None
    from .. import app  # type: ignore[attr-defined]

    return getattr(app, "run_desktop", None)


class _stop_on_signals:  # noqa: N801 - used as a context manager
    """SIGTERM and SIGINT ask the service to stop (handled on the main thread, which then calls stop())."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: Any) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        self._service.request_stop()

    def __enter__(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handler)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ---------------------------------------------------------------- status / stop


def _client(paths: Paths, timeout: float) -> Any:
    from qwen_tray_client.client import Client, ConnectionFileError

    try:
        return Client(paths.connection_file, timeout=timeout)
    except ConnectionFileError as exc:
        raise UserError(str(exc), exit_code=EXIT_NOT_RUNNING) from None


def run_status(args: argparse.Namespace) -> int:
    from qwen_tray_client.client import DaemonTimeout

    paths, _ = context(args)
    with _client(paths, timeout=10.0) as client:
        try:
            st = client.status()
        except DaemonTimeout as exc:
            raise UserError(str(exc), exit_code=EXIT_NOT_RUNNING) from None
        endpoint, pid = client.info.endpoint, client.info.pid
    if args.json:
        print(json.dumps({**st, "pid": pid, "endpoint": endpoint}, indent=2))
        return 0
    placement = st.get("placement") or {}
    print(f"qwen-tray {st.get('version', '?')}: {st['state']} (pid {pid}, {endpoint})")
    model = st.get("model", "?")
    if st.get("demo"):
        model += " (demo: the bundled tiny model, it only names the main colour; `qwen-tray model pull` gets Qwen3-VL)"
    print(f"  model:     {model}")
    if st.get("model_path"):
        print(f"  path:      {st['model_path']}")
    if placement and placement.get("name") == "remote":
        print(f"  placement: {placement.get('summary', '?')}")
    elif placement:
        print(f"  placement: {placement.get('summary', '?')}: {placement.get('reason', '')}")
    if st.get("state") == "ready" and not st.get("loaded", True):
        print("  loaded:    no (unloaded while idle; the next request loads it)")
    if st.get("error"):
        print(f"  error:     {st['error']}")
    http = st.get("http") or {}
    if http:
        print(f"  http:      {http.get('url') or 'off: ' + str(http.get('error'))}"
              + (" (OpenAI-compatible; `qwen-tray api-key` prints the key)" if http.get("url") else ""))
    print(f"  queue:     {st.get('queue_depth', 0)} waiting")
    print(f"  uptime:    {_duration(st.get('uptime_s', 0))}")
    return 0


def run_stop(args: argparse.Namespace) -> int:
    from qwen_tray_client.client import DaemonTimeout
    from qwen_tray_client.connection import ConnectionFileError, DaemonNotRunning, pid_alive, read_connection_file

    paths, _ = context(args)
    try:
        info = read_connection_file(paths.connection_file)
    except DaemonNotRunning:
        print("qwen-tray is not running", file=sys.stderr)
        return EXIT_NOT_RUNNING  # as for status and ask: scripts can tell "nothing to stop" from "stopped"
    except ConnectionFileError as exc:
        raise UserError(str(exc), exit_code=EXIT_NOT_RUNNING) from None
    from qwen_tray_client.client import Client

    with Client(info=info, timeout=10.0) as client:
        try:
            client.shutdown()
        except DaemonTimeout as exc:
            raise UserError(str(exc), exit_code=EXIT_NOT_RUNNING) from None
    # Return only once the process has exited: an uninstaller deletes the venv right after `stop`, and a
    # process still unloading the model holds its DLLs. (The connection file goes earlier, with the sockets.)
    deadline = time.monotonic() + args.timeout
    while not _exited(info.pid, pid_alive):
        if time.monotonic() > deadline:
            kill = "Task Manager" if os.name == "nt" else f"`kill {info.pid}`"
            raise UserError(f"qwen-tray (pid {info.pid}) was asked to stop but is still running after "
                            f"{args.timeout:g} s (a model load or a generation may be stuck); {kill} ends it",
                            exit_code=1)
        time.sleep(0.05)
    print(f"qwen-tray stopped (pid {info.pid})")
    return 0


def _exited(pid: int, pid_alive: Callable[[int], bool]) -> bool:
    """The process is gone, or (Linux) a zombie that only waits for its parent to collect its exit status."""
    if not pid_alive(pid):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False  # no /proc (Windows, macOS): pid_alive already said it runs
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
