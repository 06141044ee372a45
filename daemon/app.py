"""`qwen-tray run` with a display: the desktop (popup, region overlay, tray, hotkeys) around the service.

Threads and who owns what:
- main thread: Tk (every widget, the popup, the overlay, the X11 tray menu, notices, screen captures);
- "tray": the tray icon's loop; "hotkeys-*": the hotkey listener; "hotkey-retry"
  only while a hotkey is held by another program; the service's own threads
  (ZeroMQ server, scheduler worker with the engine).
They talk only through queues and events: other threads reach Tk through
`TkInbox.post` (a queue plus one wake-up, no timer), the popup reaches the
engine through `Scheduler.submit` (the scheduler's queue), and job events come
back through the same inbox. When nobody asks and every hotkey is ours, every
thread is blocked and the process uses no CPU.

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

WHAT = {"ask_screen": "the screen", "ask_region": "a region"}  # what each hotkey asks about, for people
_FINISHED_TK: list[Any] = []  # Tk interpreters whose desktop has ended: freed at exit, on the main thread
NOTICE_REPAINT_MS = 200  # after closing our notice, before a capture (as the desktop waits for its own windows)


def pretty_combo(combo: str) -> str:
    """"ctrl+alt+q" -> "Ctrl+Alt+Q", as people write keys."""
    return "+".join(part.upper() if len(part) == 1 else part.capitalize() for part in combo.split("+"))


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


class _NoticeFirst:
    """The desktop as the tray menu sees it: an ask closes our notice first, so it is never in the capture."""

    def __init__(self, app: DesktopApp) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app.desktop, name)

    def ask_screen(self, delay_ms: int = 0) -> None:
        self._app._before_capture(lambda: self._app.desktop.ask_screen(delay_ms))

    def ask_region(self, delay_ms: int = 0) -> None:
        self._app._before_capture(lambda: self._app.desktop.ask_region(delay_ms))


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
        self.hotkey_retry: Any = None
        self._taken: dict[str, str] = {}  # name -> the problem shown for a hotkey another program holds
        self._working: list[tuple[str, str]] = []  # (name, combo) of the hotkeys that work
        self.notice: Any = None  # the open qwen_tray.ui.notice.Notice, if any
        self.tray: Any = None
        self.actions = Actions(self.inbox, _NoticeFirst(self), service.scheduler, paths, self.quit)
        self._quitting = threading.Event()
        self._tray_lock = threading.Lock()
        self._old_signals: dict[int, Any] = {}
        self._wakeup_fd_set = False
        on_stop_request = getattr(service, "on_stop_request", None)
        if on_stop_request is not None:  # `qwen-tray stop` over IPC, or the service's own signal handler
            on_stop_request(self.quit)

    # -- parts --------------------------------------------------------------------------------------------
    def start_hotkeys(self) -> None:
        """Register the configured hotkeys; one that is taken or malformed is reported and the rest still work.

        A hotkey another program holds is retried until it is free (qwen_tray.hotkey.retry); the log says which
        hotkeys work, and `hotkey_notice()` says what does not, once, on screen.
        """
        from .hotkey import HotkeyError, HotkeyTaken, HotkeyUnavailable, create_listener
        from .hotkey.retry import HotkeyRetry

        hk = self.cfg.hotkey
        try:
            listener = create_listener(hk.backend)
        except HotkeyUnavailable as exc:
            self.hotkey_problems.append(f"hotkeys are off: {exc}")
            log.warning("hotkeys are off: %s", exc)
            return
        self.hotkey_retry = HotkeyRetry(listener, self._hotkey_freed)
        working: list[tuple[str, str]] = []
        for name, combo, action in self._hotkey_table():
            if not combo:
                continue
            callback = self._hotkey_callback(action)
            try:
                listener.register(name, combo, callback)
                working.append((name, combo))
            except HotkeyTaken as exc:
                problem = f"{combo} ({WHAT[name]}) is held by another program"
                with self._tray_lock:
                    self._taken[name] = problem
                    self.hotkey_problems.append(problem)
                log.warning("%s: it does nothing until that program lets go; qwen-tray takes it then", exc)
                self.hotkey_retry.add(name, combo, callback)
            except (HotkeyError, HotkeyUnavailable) as exc:
                with self._tray_lock:
                    self.hotkey_problems.append(str(exc))
                log.warning("%s", exc)
        listener.start()
        self.hotkeys = listener
        self.actions.hotkeys = listener
        if self._taken and hasattr(listener, "watch_desktop"):
            listener.watch_desktop(self.hotkey_retry.poke)
        with self._tray_lock:  # the retry thread may already have freed one (`_hotkey_freed`)
            self._working = [*working, *(w for w in self._working if w not in working)]
            problems = list(self.hotkey_problems)
        works = [f"{combo} asks about {WHAT[name]}" for name, combo in working]
        log.info("hotkeys: %s%s", "; ".join(works) if works else "none works",
                 f" (not working: {'; '.join(problems)})" if problems else "")

    def _hotkey_callback(self, action: Any) -> Any:
        """What a hotkey does (on the listener's thread): hand `action` to the Tk thread, closing a notice first."""
        return lambda: self.inbox.post(self._before_capture, action)

    def _before_capture(self, action: Any) -> None:
        """Tk thread: a notice of ours must not be in the screenshot; give the desktop a moment to repaint."""
        if self.notice is not None and self.notice.open:
            self.notice.close()
            self.root.update_idletasks()
            self.root.after(NOTICE_REPAINT_MS, action)
            return
        action()

    def _hotkey_freed(self, name: str, combo: str) -> None:
        """The retry thread took a hotkey that another program held: say so, and the tooltip drops the note."""
        with self._tray_lock:  # `_refresh_tray` reads the problems on other threads
            problem = self._taken.pop(name, "")
            if problem in self.hotkey_problems:
                self.hotkey_problems.remove(problem)
            self._working.append((name, combo))
            still_taken = bool(self._taken)
        log.info("hotkey %s is free now: it asks about %s", combo, WHAT[name])
        if not still_taken and self.hotkeys is not None and hasattr(self.hotkeys, "watch_desktop"):
            self.hotkeys.watch_desktop(None)
        self._refresh_tray()

    def hotkey_notice(self) -> str:
        """The one notice about hotkeys at start ("" when all work)."""
        with self._tray_lock:  # the retry thread changes these (`_hotkey_freed`)
            problems, held, working = list(self.hotkey_problems), dict(self._taken), list(self._working)
        if not problems:
            return ""
        taken = [(name, combo) for name, combo, _ in self._hotkey_table() if name in held]
        lines = [f"{pretty_combo(combo)} (ask about {WHAT[name]}) is held by another program: qwen-tray takes it "
                 "as soon as that program lets go." for name, combo in taken]
        lines += [p[:1].upper() + p[1:] + "." for p in problems if p not in held.values()]
        works = [f"{pretty_combo(combo)} (ask about {WHAT[name]})" for name, combo in working]
        lines.append(f"{', '.join(works)} and the tray menu work." if works else "The tray menu works.")
        return "\n".join(lines)

    def _hotkey_table(self) -> list[tuple[str, str, Any]]:
        hk = self.cfg.hotkey
        return [("ask_screen", hk.ask_screen, self.desktop.ask_screen),
                ("ask_region", hk.ask_region, self.desktop.ask_region)]

    def show_notice(self, text: str) -> None:
        """A self-closing notice (Tk thread)."""
        from .ui.notice import Notice

        if self.notice is not None:
            self.notice.close()
        self.notice = Notice(self.root, text)

    def start_tray(self) -> None:
        if not self.cfg.ui.show_tray:
            log.info("tray icon hidden (ui.show_tray = false)")
            return
        from .ui.tray import Tray

        try:
            from .ui.tkmenu import TkTrayMenu

            self.tray = Tray(self.actions, popup_menu=TkTrayMenu(self.root, self.inbox.post))
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
            if self.hotkey_problems:  # e.g. "ctrl+alt+q (the screen) is held by another program"
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
                self._refresh_tray()  # show the problem in the tooltip...
                self.show_notice(self.hotkey_notice())  # ...and once where it is seen
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
        if self.hotkey_retry is not None:
            self.hotkey_retry.stop()
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
    # abort the process. A thread that outlived its join (the tray's, after its 1 s) or a menu action's thread
    # may still hold a path to the root; keeping the interpreter itself until exit makes sure its last reference
    # never drops there (at exit it is freed on this thread).
    _FINISHED_TK.append(root.tk)
    del app, root
    gc.collect()
    return int(getattr(service, "exit_code", 0))  # 1 when the service failed (its local API died)
