"""The notice: shown where the tray is, closes itself (one timer), on a click, and never twice at once."""

from __future__ import annotations

import tkinter as tk

import pytest
from uitools import pump, settle
from xvfb import XvfbDisplay

from qwen_tray.ui import notice as notice_mod
from qwen_tray.ui.notice import NOTICE_TITLE, Notice, corner


def test_a_notice_closes_itself_and_on_a_click(tk_root: tk.Tk, ui_display: XvfbDisplay) -> None:
    closed: list[Notice] = []
    n = Notice(tk_root, "Ctrl+Alt+Q is held by another program.", seconds=0.3, on_closed=closed.append)
    pump(tk_root, lambda: n.win.winfo_ismapped(), 10, "the notice")
    assert n.open and n.win.title() == NOTICE_TITLE
    x, y = n.win.winfo_rootx(), n.win.winfo_rooty()
    assert x + n.win.winfo_width() > tk_root.winfo_screenwidth() - 40 and y < 100  # top right, under a panel
    pump(tk_root, lambda: not n.open, 10, "the notice to close itself")
    assert closed == [n] and not n.win.winfo_exists()
    after_ids = tk_root.tk.splitlist(tk_root.tk.call("after", "info"))
    assert not after_ids  # its one timer went with it: nothing left to wake the idle app
    m = Notice(tk_root, "click me", seconds=60)
    pump(tk_root, lambda: m.win.winfo_ismapped(), 10, "the second notice")
    settle(tk_root, 0.3)  # Tk says mapped when it asked; let the server map and place it before clicking
    ui_display.xdotool("mousemove", str(m.win.winfo_rootx() + 10), str(m.win.winfo_rooty() + 10), "click", "1")
    pump(tk_root, lambda: not m.open, 10, "a click to close it")
    assert not tk_root.tk.splitlist(tk_root.tk.call("after", "info"))


def test_the_corner_follows_the_platform(tk_root: tk.Tk, monkeypatch: pytest.MonkeyPatch) -> None:
    sw, sh = tk_root.winfo_screenwidth(), tk_root.winfo_screenheight()
    x, y = corner(tk_root, 300, 80)
    assert (x, y) == (sw - 300 - 16, 40)  # X11: under the top panel's tray
    monkeypatch.setattr(notice_mod.sys, "platform", "win32")
    x, y = corner(tk_root, 300, 80)
    assert x == sw - 300 - 16 and y == sh - 80 - 64  # Windows: above the taskbar's notification area
