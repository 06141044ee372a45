"""Helpers for the in-process desktop tests: a Tk root on the test's Xvfb, a real scheduler on the tiny model,
and a loop that keeps Tk serving X events while a test waits (xdotool, xclip and the worker run meanwhile).

Import as a top-level module (``tests/`` is on sys.path, like ``xvfb``).
"""

from __future__ import annotations

import _tkinter
import gc
import os
import subprocess
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from xvfb import XvfbDisplay

from qwen_tray.engine.loader import load_engine
from qwen_tray.engine.placement import PlacementSettings
from qwen_tray.jobs import Job
from qwen_tray.scheduler import Scheduler

TINY = Path(__file__).resolve().parent / "fixtures" / "tiny-qwen3-vl-ov"


def pump(root: tk.Misc, until: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Run Tk's event loop until `until()` is true (test-side waiting; the product never polls)."""
    deadline = time.monotonic() + timeout
    handled = 0
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        # One event at a time, not `update()`: that returns only once nothing is pending, which a fast stream
        # (the tiny model's ~900 tokens/s) never allows, so the test would not go on until the stream ended.
        if root.tk.dooneevent(_tkinter.ALL_EVENTS | _tkinter.DONT_WAIT):
            handled += 1
            if handled % 50 == 0:
                root.update_idletasks()  # pending events starve idle work (geometry, redraws)
            continue
        time.sleep(0.005)  # nothing pending, idle work done too
    root.update_idletasks()  # and what the condition's handlers asked of the X server is sent (XSync)


def run_while_pumping(root: tk.Misc, argv: list[str], env: dict[str, str], timeout: float = 30.0) -> str:
    """Run an X client (xdotool, xclip) while Tk keeps serving events (xclip asks *us* for the clipboard)."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pump(root, lambda: proc.poll() is not None, timeout, " ".join(argv))
    out, err = proc.communicate()
    assert proc.returncode == 0, f"{' '.join(argv)} failed: {err}"
    return out


def settle(root: tk.Misc, seconds: float = 0.2) -> None:
    end = time.monotonic() + seconds
    pump(root, lambda: time.monotonic() > end, seconds + 5, "settle")


class Recorder:
    """The real scheduler, with every submitted job remembered (to look at the messages the engine got)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.jobs: list[Job] = []
        self.cancelled: list[Job] = []

    def submit(self, job: Job) -> int:
        self.jobs.append(job)
        return self.scheduler.submit(job)

    def cancel(self, job: Job) -> None:
        self.cancelled.append(job)
        self.scheduler.cancel(job)

    def status(self) -> dict:
        return self.scheduler.status()

    def reload(self) -> None:
        self.scheduler.reload()

    def add_listener(self, cb: Callable[[str], None]) -> None:
        self.scheduler.add_listener(cb)


def make_scheduler(**kw: object) -> Scheduler:
    s = Scheduler(lambda: load_engine(TINY, "genai", "CPU", PlacementSettings()), demo=True,
                  model_name="tiny-qwen3-vl-ov", **kw)  # type: ignore[arg-type]
    s.start()
    deadline = time.monotonic() + 60
    while s.status()["state"] == "loading":
        assert time.monotonic() < deadline, "the tiny model did not load"
        time.sleep(0.02)
    assert s.status()["state"] == "ready", s.status()
    return s


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    s = make_scheduler()
    yield s
    s.stop()


@pytest.fixture
def recorder(scheduler: Scheduler) -> Recorder:
    return Recorder(scheduler)


@pytest.fixture(scope="session")
def ui_display() -> Iterator[XvfbDisplay]:
    """One Xvfb for every in-process Tk test of the session.

    Why not a fresh server per test: Tk keeps its X connection until the process
    exits, and Xlib ends the whole process when that server goes away. So Tk in
    this process gets one server that lives as long as the test session.
    """
    with XvfbDisplay() as d:
        yield d


@pytest.fixture(scope="session")
def _session_root(ui_display: XvfbDisplay) -> Iterator[tk.Tk]:
    """One Tk interpreter for the whole session, created and finally freed on the main thread.

    Why: a Tk interpreter freed by the garbage collector on another thread (the engine's
    worker, say) makes Tcl abort the process; a root per test leaves exactly such garbage.
    """
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = ui_display.display
    try:
        root = tk.Tk()
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
    root.withdraw()
    yield root
    root.destroy()


@pytest.fixture
def tk_root(_session_root: tk.Tk, ui_display: XvfbDisplay, monkeypatch: pytest.MonkeyPatch) -> Iterator[tk.Tk]:
    """The session's Tk root, clean: no windows and no timers are left over from an earlier test."""
    monkeypatch.setenv("DISPLAY", ui_display.display)
    root = _session_root
    yield root
    for w in root.winfo_children():
        w.destroy()
    for after_id in root.tk.splitlist(root.tk.call("after", "info")):
        root.after_cancel(after_id)
    root.update()
    gc.collect()  # free this test's Tk objects here, on the Tk thread
