"""A real X display for desktop tests: Xvfb (plus an optional tray host), started and torn down by the tests.

Why a helper and not a CI wrapper (`xvfb-run`): each test gets its own server, so grabs, windows and the
clipboard of one test can never leak into another, and the tests run the same way on a laptop and in CI.

How to use it from a test module: the fixtures ``xvfb_display`` and ``xvfb_tray`` are registered for every
test by ``pytest_plugins = ["xvfb"]`` in ``tests/conftest.py``, so just name them as parameters. For the type,
import the class as a top-level module (``tests/`` has no ``__init__.py``; pytest's default "prepend" import
mode puts ``tests/`` on ``sys.path`` because ``tests/conftest.py`` lives there):

    from xvfb import XvfbDisplay

    def test_something(xvfb_display: XvfbDisplay, artifacts_dir) -> None:
        # DISPLAY is already set in os.environ for this test (and so for subprocesses started with it).
        xvfb_display.xdotool("key", "ctrl+alt+q")
        wid = xvfb_display.wait_for_window(r"^Qwen", timeout=10)
        x, y, w, h = xvfb_display.window_geometry(wid)
        xvfb_display.screenshot(artifacts_dir / "popup.png")

Known pixels and layouts: ``paint(left, top, w, h, rgb)`` shows a solid override-redirect window,
``set_root_color(rgb)`` fills the desktop (no ``xsetroot`` needed), ``set_monitors([(x, y, w, h), ...])`` splits
a wide Xvfb (``XvfbDisplay(width=3200, height=1080)``) into RandR monitors that mss sees as separate monitors.

``xvfb_tray`` is the same with Debian's ``trayer`` running as a system-tray host (``display.tray`` is its
Popen). Outside pytest: ``with XvfbDisplay(tray=True) as d: ...`` (set ``os.environ["DISPLAY"] = d.display``
yourself, or pass ``env=d.env()`` to subprocesses).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TRAYER_ARGS = (
    "--edge", "top", "--align", "right", "--SetDockType", "true", "--transparent", "true",
    "--expand", "true", "--widthtype", "request",
)  # fmt: skip


class XvfbError(RuntimeError):
    """The X server or a helper tool failed; the message carries its stderr."""


class XvfbDisplay:
    """One private Xvfb server (``-displayfd`` picks a free number without races) and helpers to drive it."""

    def __init__(self, width: int = 1920, height: int = 1080, depth: int = 24, tray: bool = False) -> None:
        self.width, self.height, self.depth = width, height, depth
        self.want_tray = tray
        self.display = ""
        self.server: subprocess.Popen[bytes] | None = None
        self.tray: subprocess.Popen[bytes] | None = None
        self._xconn: Any = None  # the harness's own python-xlib connection (keeps painted windows alive)

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> XvfbDisplay:
        """Start Xvfb and wait until it accepts connections (it writes its display number when ready)."""
        if shutil.which("Xvfb") is None:
            raise XvfbError("Xvfb is not installed (Debian package: xvfb)")
        read_fd, write_fd = os.pipe()
        try:
            # setpriv --pdeathsig: a test run that is killed (timeout, Ctrl+C twice) takes its Xvfb with it
            # instead of leaving an orphan server on a shared machine. util-linux ships setpriv on Debian.
            guard = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []
            self.server = subprocess.Popen(
                [*guard, "Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                 f"{self.width}x{self.height}x{self.depth}", "-nolisten", "tcp", "-noreset"],
                pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
        finally:
            os.close(write_fd)
        number = b""
        deadline = time.monotonic() + timeout
        try:
            while not number.endswith(b"\n"):
                if time.monotonic() > deadline:
                    raise XvfbError("Xvfb did not report a display number in time")
                chunk = os.read(read_fd, 16)  # blocks until Xvfb writes "N\n" or exits (EOF)
                if not chunk:
                    err = self.server.stderr.read().decode(errors="replace") if self.server.stderr else ""
                    raise XvfbError(f"Xvfb exited before it was ready: {err.strip()[-500:]}")
                number += chunk
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
        self.display = f":{int(number.strip())}"
        if self.want_tray:
            self.start_tray()
        return self

    def start_tray(self, timeout: float = 15.0) -> subprocess.Popen[bytes]:
        """Run ``trayer`` as the system-tray host and wait until it owns the _NET_SYSTEM_TRAY_S0 selection."""
        if shutil.which("trayer") is None:
            raise XvfbError("trayer is not installed (Debian package: trayer)")
        self.tray = subprocess.Popen(
            ["trayer", *TRAYER_ARGS], env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while self.tray_owner() is None:
            if self.tray.poll() is not None:
                raise XvfbError(f"trayer exited with code {self.tray.returncode}")
            if time.monotonic() > deadline:
                raise XvfbError("trayer did not take the system tray selection in time")
            time.sleep(0.05)  # start-up wait only
        return self.tray

    def tray_owner(self) -> int | None:
        """The window id owning the system tray selection for screen 0, or None when no tray host runs."""
        from Xlib import display as xdisplay

        d = xdisplay.Display(self.display)
        try:
            owner = d.get_selection_owner(d.intern_atom("_NET_SYSTEM_TRAY_S0"))
            wid = int(owner.id) if owner else 0
            return wid or None
        finally:
            d.close()

    def selection_owner(self, selection: str = "CLIPBOARD") -> int | None:
        """The window id owning an X selection (CLIPBOARD, PRIMARY, _NET_SYSTEM_TRAY_S0...), or None."""
        d = self.xconn()
        owner = d.get_selection_owner(d.intern_atom(selection))
        wid = int(owner.id) if owner else 0
        return wid or None

    def wait_for_selection_owner(self, selection: str = "CLIPBOARD", timeout: float = 15.0) -> int:
        """Wait until someone owns ``selection`` (``xclip -i`` forks first and takes ownership a moment later)."""
        deadline = time.monotonic() + timeout
        while (owner := self.selection_owner(selection)) is None:
            if time.monotonic() > deadline:
                raise XvfbError(f"nobody took the {selection} selection within {timeout:.0f} s")
            time.sleep(0.02)  # test-side wait for another process
        return owner

    def stop(self) -> None:
        """Terminate the tray host and the server; safe to call twice."""
        if self._xconn is not None:
            with contextlib.suppress(Exception):
                self._xconn.close()
            self._xconn = None
        for proc in (self.tray, self.server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        for proc in (self.tray, self.server):
            if proc is not None and proc.stderr is not None:
                proc.stderr.close()
        self.tray = None
        self.server = None

    def __enter__(self) -> XvfbDisplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        """os.environ with DISPLAY pointing at this server, for subprocesses."""
        env = dict(os.environ)
        env["DISPLAY"] = self.display
        env.update(extra)
        return env

    def run(self, *argv: str, timeout: float = 30.0, check: bool = True) -> str:
        """Run an X client tool against this display and return its stdout."""
        proc = subprocess.run(list(argv), env=self.env(), capture_output=True, text=True, errors="replace",
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise XvfbError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def xdotool(self, *args: str, timeout: float = 30.0) -> str:
        """``xdotool ARGS...`` on this display, e.g. ``xdotool("key", "ctrl+alt+q")``; returns stdout."""
        return self.run("xdotool", *args, timeout=timeout)

    def screenshot(self, path: str | os.PathLike[str]) -> Path:
        """Save a PNG of the whole root window (what a person would see) and return its path."""
        import mss
        import mss.tools

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        factory = getattr(mss, "MSS", None) or mss.mss  # mss >= 10.2 deprecates the mss.mss() factory
        with factory(display=self.display) as sct:
            shot = sct.grab(sct.monitors[0])
            mss.tools.to_png(shot.rgb, shot.size, output=str(path))
        return path

    def wait_for_window(self, name_regex: str, timeout: float = 15.0, visible: bool = True) -> int:
        """Wait until a window whose name matches ``name_regex`` exists (mapped, when ``visible``); return its id."""
        deadline = time.monotonic() + timeout
        args = ["search", *(["--onlyvisible"] if visible else []), "--name", name_regex]
        while True:
            proc = subprocess.run(["xdotool", *args], env=self.env(), capture_output=True, text=True,
                                  errors="replace", timeout=10)
            ids = [int(line) for line in proc.stdout.split() if line.strip().isdigit()]
            if ids:
                return ids[-1]
            if time.monotonic() > deadline:
                raise XvfbError(f"no window named /{name_regex}/ appeared within {timeout:.0f} s")
            time.sleep(0.1)  # test-side wait for another process's window; not product code

    def window_geometry(self, wid: int) -> tuple[int, int, int, int]:
        """(x, y, width, height) of a window in root coordinates (absolute, via xwininfo)."""
        out = self.run("xwininfo", "-id", str(wid))

        def field(label: str) -> int:
            m = re.search(rf"^\s*{re.escape(label)}:\s*(-?\d+)", out, re.MULTILINE)
            if not m:
                raise XvfbError(f"xwininfo gave no {label!r} for window {wid}")
            return int(m.group(1))

        return field("Absolute upper-left X"), field("Absolute upper-left Y"), field("Width"), field("Height")

    # -- drawing and monitor layout (python-xlib, no extra Debian packages) ------------------------------------
    def xconn(self) -> Any:
        """The harness's own python-xlib connection to this display (closed by ``stop``)."""
        if self._xconn is None:
            from Xlib import display as xdisplay

            self._xconn = xdisplay.Display(self.display)
        return self._xconn

    def paint(self, left: int, top: int, width: int, height: int, rgb: tuple[int, int, int]) -> int:
        """Show a solid-colour, undecorated window (override-redirect) at exactly this place; return its id.

        It lives as long as the harness's connection, i.e. until ``stop``. Depth 24 TrueColor: pixel = 0xRRGGBB.
        """
        from Xlib import X

        d = self.xconn()
        screen = d.screen()
        pixel = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
        win = screen.root.create_window(
            left, top, width, height, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
            background_pixel=pixel, override_redirect=True,
        )  # fmt: skip
        win.map()
        win.clear_area(0, 0, 0, 0)
        d.sync()
        return int(win.id)

    def set_root_color(self, rgb: tuple[int, int, int]) -> None:
        """Fill the root window (the desktop background) with one colour, like ``xsetroot -solid``."""
        d = self.xconn()
        root = d.screen().root
        root.change_attributes(background_pixel=(rgb[0] << 16) | (rgb[1] << 8) | rgb[2])
        root.clear_area(0, 0, 0, 0)
        d.sync()

    def set_monitors(self, rects: list[tuple[int, int, int, int]]) -> None:
        """Split the screen into RandR 1.5 monitors (left, top, width, height), as a multi-monitor desk would be.

        The first rect takes over Xvfb's one real output (so the automatic whole-screen monitor goes away); the
        others are output-less virtual monitors, which is what mss and window managers read. python-xlib's own
        ``xrandr_set_monitor`` cannot pack its request (a python-xlib bug), hence the flat request here.
        """
        from Xlib.protocol import rq

        class _SetMonitor(rq.Request):
            _request = rq.Struct(
                rq.Card8("opcode"), rq.Opcode(43), rq.RequestLength(), rq.Window("window"),
                rq.Card32("name"), rq.Bool("primary"), rq.Bool("automatic"), rq.LengthOf("outputs", 2),
                rq.Int16("x"), rq.Int16("y"), rq.Card16("width"), rq.Card16("height"),
                rq.Card32("mm_width"), rq.Card32("mm_height"), rq.List("outputs", rq.Card32Obj),
            )  # fmt: skip

        d = self.xconn()
        root = d.screen().root
        output = root.xrandr_get_screen_resources()._data["outputs"][0]
        for i, (x, y, w, h) in enumerate(rects):
            _SetMonitor(
                display=d.display, opcode=d.display.get_extension_major("RANDR"), window=root,
                name=d.intern_atom(f"QT-MONITOR-{i}"), primary=i == 0, automatic=False, x=x, y=y, width=w,
                height=h, mm_width=max(w // 4, 1), mm_height=max(h // 4, 1), outputs=[output] if i == 0 else [],
            )  # fmt: skip
        d.sync()


@pytest.fixture
def xvfb_display(monkeypatch: pytest.MonkeyPatch) -> Iterator[XvfbDisplay]:
    """A fresh 1920x1080 Xvfb for this test, with DISPLAY set in os.environ; torn down afterwards."""
    with XvfbDisplay() as d:
        monkeypatch.setenv("DISPLAY", d.display)
        yield d


@pytest.fixture
def xvfb_tray(monkeypatch: pytest.MonkeyPatch) -> Iterator[XvfbDisplay]:
    """Like ``xvfb_display``, with ``trayer`` running as the system-tray host (``d.tray``)."""
    with XvfbDisplay(tray=True) as d:
        monkeypatch.setenv("DISPLAY", d.display)
        yield d
