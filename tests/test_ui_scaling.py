"""Mixed DPI: a popup on a 200 % monitor is built at twice Tk's own sizes (the monitor's DPI through a seam)."""

from __future__ import annotations

import tkinter as tk
import tkinter.font

import pytest
from PIL import Image
from uitools import Recorder

from qwen_tray import dpi
from qwen_tray.ui import scaling
from qwen_tray.ui.popup import AnswerPopup, PopupSettings

MONITOR_A = (0, 0, 1920, 1080)  # the primary: Tk's own DPI
MONITOR_B = (1920, 0, 3840, 2160)  # a 200 % monitor right of it


def _open(root: tk.Tk, rec: Recorder, monitor: tuple[int, int, int, int]) -> AnswerPopup:
    return AnswerPopup(root, rec, Image.new("RGB", (640, 400), "white"), (monitor[0] + 100, 100, 300, 200), monitor,
                       PopupSettings(presets=["Describe"]))


def _pixel_size(widget: tk.Misc, font: object) -> int:
    return int(tkinter.font.Font(root=widget, font=font).metrics("linespace"))


def test_a_popup_on_a_200_percent_monitor_is_twice_as_big(tk_root: tk.Tk, recorder: Recorder,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tk_dpi = float(tk_root.winfo_fpixels("1i"))
    monkeypatch.setattr(scaling, "monitor_dpi",
                        lambda x, y: round(tk_dpi) if x < 1920 else round(2 * tk_dpi))
    a = _open(tk_root, recorder, MONITOR_A)
    b = _open(tk_root, recorder, MONITOR_B)
    try:
        for p in (a, b):
            p.win.update_idletasks()
        ratio = b.win.winfo_reqwidth() / a.win.winfo_reqwidth()
        assert 1.6 < ratio < 2.4, ratio
        line_a = _pixel_size(a.question, a.question.cget("font"))
        line_b = _pixel_size(b.question, b.question.cget("font"))
        assert 1.6 < line_b / line_a < 2.4
        assert int(b.status.cget("wraplength")) == 2 * int(a.status.cget("wraplength"))
        x, _ = map(int, b.win.geometry().split("+")[1:])
        assert x >= 1920  # still placed on its own monitor
    finally:
        a.close()
        b.close()


def test_factor_is_one_when_the_dpi_is_unknown_or_the_same(tk_root: tk.Tk) -> None:
    tk_dpi = float(tk_root.winfo_fpixels("1i"))
    assert scaling.popup_factor(tk_root, MONITOR_A, lambda x, y: None) == 1.0
    assert scaling.popup_factor(tk_root, MONITOR_A, lambda x, y: round(tk_dpi)) == 1.0
    assert scaling.popup_factor(tk_root, MONITOR_B, lambda x, y: round(tk_dpi * 1.5)) == pytest.approx(1.5, 0.02)
    assert dpi.monitor_dpi(10, 10) is None  # X11: no per-monitor DPI to apply


def test_monitor_dpi_asks_the_monitor_under_the_point(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    from qwen_tray_client import win32

    calls: list[tuple] = []

    def monitor_from_point(pt: object, flags: int) -> int:
        calls.append(("MonitorFromPoint", pt.x, pt.y, flags))  # type: ignore[attr-defined]
        return 0x10001

    def get_dpi(hmon: int, kind: int, px: object, py: object) -> int:
        calls.append(("GetDpiForMonitor", hmon, kind))
        px._obj.value = py._obj.value = 192  # type: ignore[attr-defined]
        return 0

    fns = {"MonitorFromPoint": monitor_from_point, "GetDpiForMonitor": get_dpi}

    class Dll:
        def __getitem__(self, name: str) -> object:
            fn = fns[name]
            return type("F", (), {"argtypes": None, "restype": None, "__call__": lambda s, *a: fn(*a)})()

    monkeypatch.setattr(ctypes, "WinDLL", lambda name, **kw: Dll(), raising=False)
    win32._reset_for_tests()
    try:
        assert dpi.monitor_dpi(-1500, 300, platform="win32") == 192
    finally:
        win32._reset_for_tests()
    assert calls == [("MonitorFromPoint", -1500, 300, win32.MONITOR_DEFAULTTONEAREST),
                     ("GetDpiForMonitor", 0x10001, win32.MDT_EFFECTIVE_DPI)]
