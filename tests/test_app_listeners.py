"""Subscribe before reading: a state change or a stop request that comes between reading and registering is
never lost (the tray stuck on "loading", a `shutdown` sent as soon as the connection file appeared)."""

from __future__ import annotations

import threading
import tkinter as tk
from typing import Any

import pytest
from servicetools import TestEngine, shared_engine, wait_for

from qwen_tray.app import DesktopApp
from qwen_tray.config import Config
from qwen_tray.paths import default_paths
from qwen_tray.service import Service
from qwen_tray_client.client import Client


class RacyScheduler:
    """The model finishes loading right after the tray's first read: the state changes, and the listeners
    registered at that moment are called on another thread (as the scheduler's worker does)."""

    def __init__(self) -> None:
        self.state = "loading"
        self.listeners: list[Any] = []
        self.reads = 0

    def status(self) -> dict[str, Any]:
        self.reads += 1
        seen = self.state
        if self.reads == 1:
            self.state = "ready"
            registered = list(self.listeners)  # what the worker would call, taken when the state changes
            threading.Thread(target=lambda: [cb("ready") for cb in registered]).start()
        return {"state": seen, "model": "m", "placement": None, "queue_depth": 0, "demo": True, "error": None}

    def add_listener(self, cb: Any) -> None:
        self.listeners.append(cb)

    def submit(self, job: Any) -> int:  # pragma: no cover - not used
        raise AssertionError

    def cancel(self, job: Any) -> None:  # pragma: no cover - not used
        raise AssertionError


class FakeTray:
    def __init__(self, actions: Any) -> None:
        self.states: list[str] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def set_state(self, state: str, status: dict[str, Any] | None = None) -> None:
        self.states.append(state)


class FakeService:
    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def on_stop_request(self, cb: Any) -> None:
        pass


@pytest.mark.desktop
def test_the_tray_never_misses_a_state_change_at_start(tk_root: tk.Tk, monkeypatch: pytest.MonkeyPatch) -> None:
    import qwen_tray.ui.tray

    monkeypatch.setattr(qwen_tray.ui.tray, "Tray", FakeTray)
    cfg = Config()
    app = DesktopApp(FakeService(RacyScheduler()), default_paths(), cfg, tk_root)
    try:
        app.start_tray()
        assert wait_for(lambda: app.tray.states and app.tray.states[-1] == "ready", timeout=5), app.tray.states
    finally:
        app.inbox.close()


def test_a_stop_requested_before_the_listener_is_registered_still_reaches_it() -> None:
    shared_engine()
    engine = TestEngine()
    svc = Service(default_paths(), Config(), engine_factory=lambda _dir: engine)
    svc.start()
    try:
        with Client(svc.connection_file) as client:  # as soon as the connection file is there
            client.shutdown()
        assert svc.wait(5)
        calls: list[int] = []
        svc.on_stop_request(lambda: calls.append(1))  # e.g. the desktop app, created after start()
        assert calls == [1]
        svc.request_stop()
        assert calls == [1, 1]  # a later request reaches it as before
    finally:
        svc.stop()
