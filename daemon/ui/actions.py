"""Every tray-menu action as a plain method, safe to call from any thread.

Why a separate object: on Linux pystray's X11 backend shows no menu at all, so
the menu must be a thin shell over methods that tests (and a future menu
backend) can call directly. Anything touching Tk is posted to the Tk thread
through the inbox; everything else is thread-safe by itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..config import Config, to_toml
from ..paths import Paths
from .inbox import TkInbox

log = logging.getLogger(__name__)

MENU_CLOSE_MS = 250  # let the tray menu disappear before capturing the screen


class SchedulerLike(Protocol):
    def status(self) -> dict[str, Any]: ...

    def reload(self) -> Any: ...


class PausableHotkeys(Protocol):
    def pause(self, paused: bool) -> None: ...

    @property
    def paused(self) -> bool: ...


def open_path(path: Path) -> None:
    """Open a file or folder with the desktop's default application."""
    if sys.platform == "win32":
        os.startfile(str(path))  # type: ignore[attr-defined]
        return
    opener = "open" if sys.platform == "darwin" else shutil.which("xdg-open")
    if not opener:
        log.warning("no xdg-open on this system: open %s yourself", path)
        return
    subprocess.Popen([opener, str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)


class Actions:
    """The tray's menu, as methods. `desktop` is only ever touched on the Tk thread (via `inbox`)."""

    def __init__(
        self,
        inbox: TkInbox,
        desktop: Any,
        scheduler: SchedulerLike,
        paths: Paths,
        quit_app: Callable[[], None],
        hotkeys: PausableHotkeys | None = None,
        opener: Callable[[Path], None] = open_path,
    ) -> None:
        self.inbox = inbox
        self.desktop = desktop
        self.scheduler = scheduler
        self.paths = paths
        self.hotkeys = hotkeys
        self._quit_app = quit_app
        self._opener = opener
        self._reloading = threading.Lock()

    # -- asking -------------------------------------------------------------------------------------------
    def ask_screen(self) -> None:
        self.inbox.post(self.desktop.ask_screen, MENU_CLOSE_MS)

    def ask_region(self) -> None:
        self.inbox.post(self.desktop.ask_region, MENU_CLOSE_MS)

    def ask_clipboard(self) -> None:
        self.inbox.post(self.desktop.ask_clipboard)

    def clear_conversation(self) -> None:
        self.inbox.post(self.desktop.clear_conversation)

    # -- state --------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        try:
            return dict(self.scheduler.status())
        except Exception as exc:
            return {"state": "error", "model": f"status unavailable: {exc}"}

    @property
    def paused(self) -> bool:
        return bool(self.hotkeys is not None and self.hotkeys.paused)

    def toggle_pause(self) -> None:
        if self.hotkeys is None:
            log.warning("no hotkeys to pause (none could be registered)")
            return
        self.hotkeys.pause(not self.hotkeys.paused)
        log.info("hotkeys %s", "paused" if self.hotkeys.paused else "resumed")

    def autostart_state(self) -> tuple[bool | None, str]:
        """(enabled, reason); enabled None when start-at-login is not available here, and why."""
        try:
            from .. import autostart
        except ImportError:
            return None, "not available in this build"
        try:
            return bool(autostart.status().enabled), ""
        except Exception as exc:
            return None, str(exc)

    def toggle_autostart(self) -> None:
        enabled, reason = self.autostart_state()
        if enabled is None:
            log.warning("start at login is not available: %s", reason)
            return
        from .. import autostart

        try:
            st = autostart.disable() if enabled else autostart.enable(config_file=self.paths.config_file)
        except Exception as exc:
            log.error("could not change start at login: %s", exc)
            return
        log.info("start at login %s (%s)", "on" if st.enabled else "off", st.where)

    # -- files ----------------------------------------------------------------------------------------------
    def open_config(self) -> None:
        """Open the config file, writing one with the defaults first if there is none."""
        path = self.paths.config_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            header = "# qwen-tray settings. Every key is optional; these are the defaults.\n\n"
            path.write_text(header + to_toml(Config()), encoding="utf-8")
            log.info("wrote a default config to %s", path)
        self._opener(path)

    def open_log_folder(self) -> None:
        self.paths.log_dir.mkdir(parents=True, exist_ok=True)
        self._opener(self.paths.log_dir)

    # -- model and process --------------------------------------------------------------------------------
    def reload_model(self) -> threading.Thread | None:
        """Reload the model on a thread of its own (loading can take a while; the menu must not hang)."""
        if not self._reloading.acquire(blocking=False):
            log.info("a reload is already running")
            return None

        def run() -> None:
            try:
                self.scheduler.reload()
            except Exception as exc:
                log.error("reloading the model failed: %s", exc)
            finally:
                self._reloading.release()

        t = threading.Thread(target=run, name="reload", daemon=True)
        t.start()
        return t

    def quit(self) -> None:
        self._quit_app()
