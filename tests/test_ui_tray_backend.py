"""The tray's backend seam: chosen once per platform, and pystray's icon built, run and stopped on one thread.

pystray's win32 backend cannot run here; a fake pystray module stands in with the one rule that matters on
Windows: the icon's windows belong to the thread that built it, so its message loop must run there, and
`stop()` ends that loop (which removes the icon) only if it is that thread's loop.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import pytest

from qwen_tray.ui import tray as tray_mod
from qwen_tray.ui.tray import Tray, backend
from qwen_tray.ui.wintray import PystrayIcon
from qwen_tray.ui.xtray import XTrayIcon


class FakePystray:
    """`pystray` with a win32-like Icon: a per-thread message queue, WM_STOP handled by the owning thread."""

    def __init__(self) -> None:
        self.icons: list[FakeIcon] = []
        outer = self

        class Icon(FakeIcon):
            def __init__(self, *args: Any) -> None:
                super().__init__(*args)
                outer.icons.append(self)

        self.Icon = Icon


class FakeIcon:
    HAS_MENU = True

    def __init__(self, name: str, image: Any, title: str, menu: Any) -> None:
        self.name, self.image, self._title, self.menu = name, image, title, menu
        self.built_on = threading.current_thread().name
        self.messages: queue.Queue[str] = queue.Queue()  # the window's queue: the building thread's
        self.run_on = ""
        self.events: list[tuple[str, str]] = []
        self.visible = False

    @property
    def title(self) -> str:
        return self._title

    @title.setter
    def title(self, value: str) -> None:
        self._title = value
        self.events.append(("NIM_MODIFY title", threading.current_thread().name))

    @property
    def icon(self) -> Any:
        return self.image

    @icon.setter
    def icon(self, value: Any) -> None:
        self.image = value
        self.events.append(("NIM_MODIFY icon", threading.current_thread().name))

    def run(self, setup: Any = None) -> None:
        self.run_on = threading.current_thread().name
        if self.run_on != self.built_on:
            return  # GetMessage on a thread that owns no window of ours: nothing ever arrives; stop is lost
        threading.Thread(target=setup, args=(self,), name="pystray-setup").start()
        while self.messages.get() != "WM_STOP":
            pass
        self.events.append(("NIM_DELETE", threading.current_thread().name))

    def stop(self) -> None:
        self.messages.put("WM_STOP")  # PostMessage to the window

    def update_menu(self) -> None:
        self.events.append(("update_menu", threading.current_thread().name))


class Actions:
    paused = False

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *a: self.calls.append(name)

    def autostart_state(self) -> tuple[bool | None, str]:
        return False, ""

    def status(self) -> dict[str, Any]:
        return {"model": "tiny", "demo": True}


def test_the_backend_is_chosen_once_per_platform() -> None:
    assert backend("linux", {"DISPLAY": ":5"}) is XTrayIcon
    assert backend("win32", {}) is PystrayIcon
    assert backend("darwin", {}) is PystrayIcon
    with pytest.raises(RuntimeError, match="DISPLAY"):
        backend("linux", {})
    source = Path(tray_mod.__file__).read_text(encoding="utf-8")
    assert "use_xembed" not in source and source.count("sys.platform") == 1  # backend() alone decides


def test_pystray_icon_is_built_and_run_on_its_own_thread_and_stop_ends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSTRAY_BACKEND", "dummy")  # the real menu objects, no X connection
    fake = FakePystray()
    t = Tray(Actions(), backend_factory=lambda *a, **kw: PystrayIcon(*a, pystray_module=fake, **kw))
    t.start(timeout=10)
    icon = fake.icons[0]
    assert icon.built_on == icon.run_on == "tray" != threading.current_thread().name
    assert icon.visible
    t.set_state("busy", {"model": "tiny"})  # from this thread: handed to the updater thread
    t.set_state("ready", {"model": "tiny"})
    backend_icon = t.icon
    assert isinstance(backend_icon, PystrayIcon)
    thread = backend_icon._thread
    assert thread is not None and thread.is_alive()
    t.stop()  # joins for at most 1 s
    assert not thread.is_alive()  # the loop ended on its own thread: the icon is gone, no 5 s wait
    assert ("NIM_DELETE", "tray") in icon.events
    assert icon.title.startswith("qwen-tray: ")


def test_menu_actions_refresh_the_menu_on_the_tray_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSTRAY_BACKEND", "dummy")
    fake = FakePystray()
    actions = Actions()
    t = Tray(actions, backend_factory=lambda *a, **kw: PystrayIcon(*a, pystray_module=fake, **kw))
    t.start(timeout=10)
    try:
        icon = fake.icons[0]
        pause = next(i for i in icon.menu.items if str(i.text) == "Pause hotkeys")
        done = threading.Event()

        def click() -> None:  # what pystray does on its loop thread when an item is chosen
            pause(icon)
            done.set()

        threading.Thread(target=click, name="tray-click").start()
        assert done.wait(10)
        assert actions.calls == ["toggle_pause"]
        assert ("update_menu", "tray-click") in icon.events  # on the thread that ran the callback
        assert t.icon is not None and t.icon.hooked is False  # no pystray win32 internals here: no hook
    finally:
        t.stop()


def test_pystray_is_bounded_because_the_menu_hook_uses_its_internals() -> None:
    import re

    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    spec = re.search(r'"pystray([^"]*)"', text)
    assert spec and "<0.20" in spec.group(1)
