"""`qwen-tray run` with a display: the desktop (popup, region overlay, tray, hotkeys) around the service.

Threads and who owns what:
- main thread: Tk (every widget, the popup, the overlay, screen captures);
- "tray": pystray's loop; "hotkeys": the hotkey listener; the service's own
  threads (ZeroMQ server, scheduler worker with the engine).
They talk only through queues and events: other threads reach Tk through
`TkInbox.post` (a queue plus one wake-up, no timer), the popup reaches the
engine through `Scheduler.submit` (the scheduler's queue), and job events come
back through the same inbox. When nobody asks, every thread is blocked and the
process uses no CPU.

Shutdown (tray Quit, SIGTERM, Ctrl+C): Tk leaves its loop, our windows close
(cancelling a running answer), hotkeys and tray stop, then the service stops
(answers end with terminal events, sockets close, connection file removed).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from typing import Any

from .config import Config
from .paths import Paths

log = logging.getLogger(__name__)


def display_problem() -> str:
    """Why there is no desktop to show ("" when there is one)."""
    if sys.platform.startswith("linux") or sys.platform.startswith("freebsd"):
        if not os.environ.get("DISPLAY"):
            if os.environ.get("WAYLAND_DISPLAY"):
                return "this is a Wayland session without XWayland ($DISPLAY is not set)"
            return "there is no display ($DISPLAY is not set)"
    return ""


def _set_dpi_awareness() -> None:
    try:
        from .dpi import set_dpi_awareness
    except ImportError:
        return
    try:
        set_dpi_awareness()
    except Exception as exc:  # never fatal: the worst case is a blurry, scaled capture
        log.warning("could not set DPI awareness: %s", exc)


def _clipboard_reader() -> Any:
    """`() -> (image or None, reason)` over qwen_tray.clipboard, or None when this build has no clipboard support."""
    try:
        from .clipboard import read_clipboard
    except ImportError:
        return None

    def read() -> tuple[Any, str]:
        r = read_clipboard()
        return r.image, r.reason

    return read


class DesktopApp:
    """Owns the desktop's parts for one `run`; `run()` blocks on the Tk loop until quit."""

    def __init__(self, service: Any, paths: Paths, cfg: Config, root: Any) -> None:
        """`service` is started (its scheduler exists); `root` is the withdrawn Tk root of this thread."""
        from .ui.actions import Actions
        from .ui.desktop import Desktop
        from .ui.history import history_file
        from .ui.inbox import TkInbox

        self.service = service
        self.paths = paths
        self.cfg = cfg
        self.root = root
        self.inbox = TkInbox(self.root)
        self.desktop = Desktop(self.root, service.scheduler, cfg, post=self.inbox.post,
                               clipboard_image=_clipboard_reader(),
                               history_path=history_file(paths.models_dir.parent))
        self.hotkeys: Any = None
        self.hotkey_problems: list[str] = []
        self.tray: Any = None
        self.actions = Actions(self.inbox, self.desktop, service.scheduler, paths, self.quit)
        self._quitting = threading.Event()
        self._tray_lock = threading.Lock()
        self._old_signals: dict[int, Any] = {}
        self._wakeup_fd_set = False
        on_stop_request = getattr(service, "on_stop_request", None)
        if on_stop_request is not None:  # `qwen-tray stop` over IPC, or the service's own signal handler
            on_stop_request(self.quit)

    # -- parts --------------------------------------------------------------------------------------------
    def start_hotkeys(self) -> None:
        """Register the configured hotkeys; one that is taken or malformed is reported and the rest still work."""
        from .hotkey import HotkeyError, HotkeyTaken, HotkeyUnavailable, create_listener

        hk = self.cfg.hotkey
        try:
            listener = create_listener(hk.backend)
        except HotkeyUnavailable as exc:
            self.hotkey_problems.append(str(exc))
            log.warning("hotkeys are off: %s", exc)
            return
        for name, combo, action in (
            ("ask_screen", hk.ask_screen, self.desktop.ask_screen),
            ("ask_region", hk.ask_region, self.desktop.ask_region),
        ):
            if not combo:
                continue
            try:
                listener.register(name, combo, lambda a=action: self.inbox.post(a))
            except (HotkeyTaken, HotkeyError, HotkeyUnavailable) as exc:
                self.hotkey_problems.append(str(exc))
                log.warning("%s", exc)
        listener.start()
        self.hotkeys = listener
        self.actions.hotkeys = listener
        log.info("hotkeys: %s asks about the screen, %s about a region", hk.ask_screen, hk.ask_region)

    def start_tray(self) -> None:
        if not self.cfg.ui.show_tray:
            log.info("tray icon hidden (ui.show_tray = false)")
            return
        from .ui.tray import Tray

        try:
            self.tray = Tray(self.actions)
            self.tray.start()
        except Exception as exc:  # no tray host, no X connection for pystray...: the rest still works
            log.warning("no tray icon: %s", exc)
            self.tray = None
            return
        # Subscribe first, then read: a change between the two is then seen by the listener, and
        # `_refresh_tray` always shows the state current when it runs (see there).
        add_listener = getattr(self.service.scheduler, "add_listener", None)
        if add_listener is not None:
            add_listener(self._on_state)
        self._refresh_tray()

    def _status(self) -> dict[str, Any]:
        try:
            return dict(self.service.scheduler.status())
        except Exception:
            return {"state": "loading"}

    def _on_state(self, state: str) -> None:
        """Scheduler state changed (any thread): new tray icon and tooltip."""
        self._refresh_tray()

    def _refresh_tray(self) -> None:
        """Show the scheduler's current state. Reading and showing happen under one lock, so of concurrent
        refreshes (the worker's listener, the first read at start) the last one shows the newest state; the
        state passed to a listener may already be stale, so it is not used."""
        with self._tray_lock:
            if self.tray is None:
                return
            status = self._status()
            if self.hotkey_problems:  # e.g. "hotkey ctrl+alt+q (ask_screen) is already taken by another program"
                status["note"] = self.hotkey_problems[0]
            self.tray.set_state(status.get("state", "loading"), status)

    # -- signals --------------------------------------------------------------------------------------------
    def install_signals(self) -> None:
        """SIGTERM and Ctrl+C quit cleanly. The signal must wake Tk's blocking loop: on POSIX the inbox pipe
        is also Python's signal wake-up fd, so Tk wakes, and Python runs the handler at once."""
        def handler(signum: int, frame: Any) -> None:
            log.info("signal %d: shutting down", signum)
            self.quit()

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_signals[sig] = signal.signal(sig, handler)
        wake = self.inbox.wakeup_fd()
        if wake is not None:
            signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
            self._wakeup_fd_set = True

    def restore_signals(self) -> None:
        if self._wakeup_fd_set:
            signal.set_wakeup_fd(-1)
            self._wakeup_fd_set = False
        for sig, old in self._old_signals.items():
            signal.signal(sig, old)
        self._old_signals.clear()

    # -- life -----------------------------------------------------------------------------------------------
    def quit(self) -> None:
        """Ask the Tk loop to end (any thread)."""
        if not self._quitting.is_set():
            self._quitting.set()
            self.inbox.post(self.root.quit)

    def run(self) -> None:
        self.install_signals()
        try:
            self.start_tray()
            self.start_hotkeys()
            if self.hotkey_problems:
                self._refresh_tray()  # show the problem in the tooltip
            log.info("desktop ready")
            self.root.after_idle(self.inbox.drain)  # anything posted before the loop runs (Windows wake-ups)
            if not self._quitting.is_set():
                self.root.mainloop()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Close windows, stop hotkeys and tray, stop the service; Tk goes last (it owns this thread)."""
        self.restore_signals()
        try:
            self.desktop.close_windows()
        except Exception:
            log.debug("closing windows failed", exc_info=True)
        if self.hotkeys is not None:
            self.hotkeys.stop()
        if self.tray is not None:
            self.tray.stop()
        self.service.stop()
        self.inbox.close()
        try:
            self.root.destroy()
        except Exception:
            log.debug("Tk destroy failed", exc_info=True)
        log.info("desktop stopped")


def create_root() -> Any:
    """The Tk root for the desktop, withdrawn (only our popup and overlay windows are ever shown)."""
    import tkinter as tk

    root = tk.Tk(className="qwen-tray")
    root.withdraw()
    root.title("qwen-tray")
    return root


def run_desktop(service: Any, paths: Paths, cfg: Config) -> int:
    """Start `service` and run the desktop around it in this process; without a display, serve headless."""
    problem = display_problem()
    root = None
    if not problem:
        _set_dpi_awareness()  # before Tk or mss touch the screen
        try:
            root = create_root()
        except Exception as exc:  # TclError: the display refused us
            problem = f"the display cannot be opened ({exc})"
    if root is None:
        log.warning("%s: serving headless (the local API works; no hotkeys, popup or tray)", problem)
        service.start()
        service.wait()
        return int(getattr(service, "exit_code", 0))
    try:
        service.start()
    except BaseException:
        root.destroy()  # e.g. a second instance: leave nothing behind
        raise
    app = DesktopApp(service, paths, cfg, root)
    app.run()
    # Free Tk's objects here, on the Tk thread: a Tk interpreter collected later on another thread makes Tcl
    # abort the process.
    del app, root
    gc.collect()
    return int(getattr(service, "exit_code", 0))  # 1 when the service failed (its local API died)
