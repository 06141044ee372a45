"""The shared Xvfb harness itself: a real server, a real tray host, real X clients."""

from __future__ import annotations

import os
import subprocess
import sys

from PIL import Image
from xvfb import XvfbDisplay


def test_display_is_private_and_torn_down(xvfb_display: XvfbDisplay, tmp_path) -> None:
    assert os.environ["DISPLAY"] == xvfb_display.display
    out = xvfb_display.run("xwininfo", "-root")
    assert "Width: 1920" in out and "Height: 1080" in out
    shot = Image.open(xvfb_display.screenshot(tmp_path / "root.png"))
    assert shot.size == (1920, 1080)
    server = xvfb_display.server
    with XvfbDisplay(width=640, height=480) as other:
        assert other.display != xvfb_display.display
        assert "Width: 640" in other.run("xwininfo", "-root")
        inner = other.server
    assert inner is not None and inner.poll() is not None  # stopped on exit
    assert server is not None and server.poll() is None


def test_wait_for_window_and_geometry(xvfb_display: XvfbDisplay) -> None:
    code = (
        "import tkinter as tk; r = tk.Tk(); r.title('harness-probe'); r.geometry('300x200+50+60'); "
        "r.after(20000, r.destroy); r.mainloop()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=xvfb_display.env())
    try:
        wid = xvfb_display.wait_for_window(r"^harness-probe$", timeout=20)
        x, y, w, h = xvfb_display.window_geometry(wid)
        assert (w, h) == (300, 200)
        assert (x, y) == (50, 60)  # no window manager: the requested position is kept
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_tray_host_owns_selection(xvfb_tray: XvfbDisplay) -> None:
    assert xvfb_tray.tray is not None and xvfb_tray.tray.poll() is None
    owner = xvfb_tray.tray_owner()
    assert owner is not None
    assert xvfb_tray.xdotool("search", "--class", "trayer").split()
