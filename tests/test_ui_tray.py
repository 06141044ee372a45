"""The tray icon docks in a real tray host (trayer on Xvfb) and shows the state; every menu action works."""

from __future__ import annotations

import subprocess
import threading
import tkinter as tk
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from uitools import Recorder, pump, run_while_pumping, settle
from xvfb import XvfbDisplay

from qwen_tray import capture
from qwen_tray.config import Config, load_config
from qwen_tray.hotkey.xlib_backend import XlibHotkeyListener
from qwen_tray.paths import default_paths
from qwen_tray.ui.actions import Actions
from qwen_tray.ui.desktop import Desktop
from qwen_tray.ui.inbox import TkInbox
from qwen_tray.ui.tray import COLORS, STATES, TOOLTIP_MAX, Tray, draw_icon, status_line, tooltip

STATUS = {"state": "ready", "model": "Qwen3-VL-4B-Instruct-int4", "demo": False,
          "placement": {"summary": "language NPU, vision GPU (hybrid)"}}


# -- pure parts ---------------------------------------------------------------------------------------------------
def _share(img: Image.Image, rgb: tuple[int, int, int], tol: int = 40) -> float:
    px = list(img.convert("RGB").tobytes())
    px = [tuple(px[i : i + 3]) for i in range(0, len(px), 3)]
    return sum(all(abs(a - b) <= tol for a, b in zip(p, rgb, strict=True)) for p in px) / len(px)


def test_each_state_has_its_own_icon() -> None:
    icons = {s: draw_icon(s) for s in STATES}
    assert all(i.size == (64, 64) and i.mode == "RGBA" for i in icons.values())
    assert len({i.tobytes() for i in icons.values()}) == len(STATES)
    for state, img in icons.items():
        own = _share(img, COLORS[state])
        assert own > 0.05, state  # the state's colour is clearly there...
        for other in STATES:
            if other != state:
                assert _share(img, COLORS[other]) < own / 3, (state, other)  # ...and not another state's
    assert draw_icon("nonsense").tobytes() == icons["error"].tobytes()


def test_tooltip_names_model_devices_and_demo() -> None:
    t = tooltip(STATUS)
    assert t == "qwen-tray: ready | Qwen3-VL-4B-Instruct-int4 | language NPU, vision GPU (hybrid)"
    demo = tooltip({**STATUS, "model": "tiny-qwen3-vl-ov", "demo": True})
    assert demo.endswith("| demo model")
    long = tooltip({**STATUS, "model": "M" * 300, "demo": True})
    assert len(long) <= TOOLTIP_MAX and long.startswith("qwen-tray: ready | MMM") and long.endswith("demo model")
    assert tooltip({}) == "qwen-tray: loading"
    assert status_line(STATUS) == "Qwen3-VL-4B-Instruct-int4 on language NPU, vision GPU (hybrid)"
    assert status_line({"model": "tiny", "demo": True}) == "tiny (demo model)"


# -- on the display -------------------------------------------------------------------------------------------
@pytest.fixture
def tray_host(ui_display: XvfbDisplay) -> XvfbDisplay:
    """trayer on the session display (started once; it stays for the session)."""
    if ui_display.tray is None or ui_display.tray.poll() is not None:
        ui_display.start_tray()
        threading.Event().wait(1.0)  # trayer owns the selection a moment before it handles dock requests
    return ui_display


@pytest.fixture
def app_parts(tk_root: tk.Tk, recorder: Recorder, ui_display: XvfbDisplay) -> Iterator[dict[str, Any]]:
    """The desktop's Tk-side parts and the Actions object, as the app wires them (real scheduler, real hotkeys)."""
    inbox = TkInbox(tk_root)
    desk = Desktop(tk_root, recorder, Config(), post=inbox.post,
                   clipboard_image=lambda: (Image.new("RGB", (320, 200), (10, 200, 90)), ""))
    hotkeys = XlibHotkeyListener()
    hotkeys.register("ask_screen", "ctrl+alt+q", lambda: inbox.post(desk.ask_screen))
    hotkeys.start()
    quits: list[str] = []
    opened: list[Path] = []
    actions = Actions(inbox, desk, recorder, default_paths(), lambda: quits.append("quit"), hotkeys=hotkeys,
                      opener=opened.append)
    yield {"inbox": inbox, "desk": desk, "actions": actions, "hotkeys": hotkeys, "quits": quits, "opened": opened}
    desk.close_windows()
    hotkeys.stop()
    inbox.close()


def _ancestor_classes(d: XvfbDisplay, wid: int) -> list[str]:
    conn = d.xconn()
    win = conn.create_resource_object("window", wid)
    out = []
    root = conn.screen().root.id
    while win.id != root:
        cls = win.get_wm_class()
        out.append(cls[1] if cls else "")
        win = win.query_tree().parent
    return out


def test_icon_docks_in_the_tray_and_follows_the_state(tray_host: XvfbDisplay, tk_root: tk.Tk,
                                                      app_parts: dict[str, Any]) -> None:
    d = tray_host
    tray = Tray(app_parts["actions"])
    tray.start()
    try:
        assert tray.icon.docked.wait(10), "the tray host did not embed the icon"
        wid = d.wait_for_window("^qwen-tray: loading$", timeout=10, visible=False)
        assert "trayer" in _ancestor_classes(d, wid)  # embedded in the tray host's panel (XEMBED)
        tray.set_state("busy", {**STATUS, "model": "tiny-qwen3-vl-ov", "demo": True})
        wid = d.wait_for_window(r"^qwen-tray: busy \| tiny-qwen3-vl-ov \| .*demo model$", timeout=10, visible=False)
        x, y, w, h = d.window_geometry(wid)
        assert w >= 16 and h >= 16
        for _ in range(100):  # the icon's thread redraws asynchronously
            drawn = capture.region(capture.Rect(x, y, w, h)).image
            if _share(drawn, COLORS["busy"], 60) > 0.03:
                break
            threading.Event().wait(0.05)
        assert _share(drawn, COLORS["busy"], 60) > 0.03  # the busy colour is what the tray shows
        tray.set_state("error", {"state": "error"})
        d.wait_for_window("^qwen-tray: error$", timeout=10, visible=False)
        # A left click is the default action: ask about the screen.
        desk: Desktop = app_parts["desk"]
        run_while_pumping(tk_root, ["xdotool", "mousemove", str(x + w // 2), str(y + h // 2), "click", "1"],
                          d.env())
        pump(tk_root, lambda: desk.popup is not None, 10, "the popup after a click on the icon")
    finally:
        tray.stop()
    assert d.run("xdotool", "search", "--name", "^qwen-tray: ", check=False) == ""


def test_menu_lists_every_action_and_calls_it(tray_host: XvfbDisplay, tk_root: tk.Tk,
                                              app_parts: dict[str, Any]) -> None:
    import pystray

    actions: Actions = app_parts["actions"]
    menu = Tray(actions).menu()
    labels = [str(i.text) for i in menu.items if i is not pystray.Menu.SEPARATOR]
    assert labels == [
        "Ask about screen", "Ask about region", "Ask about clipboard image", "Clear conversation",
        "tiny-qwen3-vl-ov on CPU (CPU) (demo model)", "Pause hotkeys", "Start at login", "Open config",
        "Open log folder", "Reload model", "Quit",
    ]
    by_label = {str(i.text): i for i in menu.items}
    assert by_label["Ask about screen"].default  # what a left click (X11: the only click) does
    assert not by_label["tiny-qwen3-vl-ov on CPU (CPU) (demo model)"].enabled
    assert by_label["Pause hotkeys"].checked is False
    by_label["Pause hotkeys"](None)
    assert app_parts["hotkeys"].paused and by_label["Pause hotkeys"].checked is True
    by_label["Pause hotkeys"](None)
    assert not app_parts["hotkeys"].paused
    by_label["Quit"](None)
    assert app_parts["quits"] == ["quit"]


def test_ask_actions_from_another_thread_open_the_popup_and_overlay(
        tk_root: tk.Tk, app_parts: dict[str, Any], ui_display: XvfbDisplay) -> None:
    actions: Actions = app_parts["actions"]
    desk: Desktop = app_parts["desk"]
    threading.Thread(target=actions.ask_screen).start()  # the tray's thread, in real life
    pump(tk_root, lambda: desk.popup is not None, 10, "the popup")
    assert desk.popup is not None and desk.popup.image.size == (1920, 1080)
    desk.popup.ask("hello")
    pump(tk_root, lambda: desk.popup is not None and desk.popup.state == "done", 60, "the answer")
    threading.Thread(target=actions.clear_conversation).start()
    pump(tk_root, lambda: desk.popup is not None and desk.popup.answer_text() == "", 10, "the clear")
    threading.Thread(target=actions.ask_region).start()
    pump(tk_root, lambda: desk.region is not None, 10, "the region overlay")
    assert desk.popup is None  # our popup went away before the capture
    desk.region.cancel()
    threading.Thread(target=actions.ask_clipboard).start()
    pump(tk_root, lambda: desk.popup is not None, 10, "the clipboard popup")
    assert desk.popup is not None and desk.popup.image.size == (320, 200)


def test_hotkey_pause_from_the_menu_stops_the_real_hotkey(tk_root: tk.Tk, app_parts: dict[str, Any],
                                                          ui_display: XvfbDisplay) -> None:
    actions: Actions = app_parts["actions"]
    desk: Desktop = app_parts["desk"]
    actions.toggle_pause()
    assert actions.paused
    run_while_pumping(tk_root, ["xdotool", "key", "ctrl+alt+q"], ui_display.env())
    settle(tk_root, 0.5)
    assert desk.popup is None
    actions.toggle_pause()
    run_while_pumping(tk_root, ["xdotool", "key", "ctrl+alt+q"], ui_display.env())
    pump(tk_root, lambda: desk.popup is not None, 10, "the popup after resuming")


def test_clipboard_without_an_image_shows_a_notice(tk_root: tk.Tk, recorder: Recorder) -> None:
    inbox = TkInbox(tk_root)
    desk = Desktop(tk_root, recorder, Config(), post=inbox.post,
                   clipboard_image=lambda: (None, "the clipboard holds no image (copy an image first)"))
    desk.ask_clipboard()
    pump(tk_root, lambda: desk._notice is not None, 10, "the notice")
    assert desk.popup is None
    assert desk._notice.text == "The clipboard holds no image (copy an image first)."
    inbox.close()


def test_file_actions(app_parts: dict[str, Any]) -> None:
    actions: Actions = app_parts["actions"]
    paths = default_paths()
    assert not paths.config_file.exists()
    actions.open_config()
    assert app_parts["opened"] == [paths.config_file]
    assert load_config(paths.config_file) == Config()  # a valid file with the defaults
    paths.config_file.write_text('[ui]\nshow_tray = false\n')
    actions.open_config()  # an existing config is opened, never overwritten
    assert paths.config_file.read_text() == '[ui]\nshow_tray = false\n'
    actions.open_log_folder()
    assert app_parts["opened"][-1] == paths.log_dir and paths.log_dir.is_dir()


def test_open_path_uses_the_desktop_opener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux: xdg-open. A stand-in xdg-open on PATH records what it was asked to open."""
    from qwen_tray.ui.actions import open_path

    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "opened.txt"
    script = bindir / "xdg-open"
    script.write_text(f'#!/bin/sh\necho "$1" >> {log}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    open_path(tmp_path)
    subprocess.run(["sh", "-c", "sleep 0"], check=True)
    for _ in range(100):
        if log.exists():
            break
        threading.Event().wait(0.05)
    assert log.read_text().strip() == str(tmp_path)


def test_autostart_toggle(app_parts: dict[str, Any]) -> None:
    from qwen_tray import autostart

    actions: Actions = app_parts["actions"]
    assert actions.autostart_state() == (False, "")
    actions.toggle_autostart()
    st = autostart.status()
    assert st.enabled and Path(st.where).is_file()
    assert actions.autostart_state() == (True, "")
    actions.toggle_autostart()
    assert not autostart.status().enabled and actions.autostart_state() == (False, "")


def test_reload_model_and_status(app_parts: dict[str, Any], recorder: Recorder) -> None:
    actions: Actions = app_parts["actions"]
    loads = recorder.scheduler.loads
    t = actions.reload_model()
    assert t is not None
    t.join(30)
    deadline = threading.Event()
    for _ in range(600):
        if recorder.scheduler.loads == loads + 1 and recorder.scheduler.status()["state"] == "ready":
            break
        deadline.wait(0.05)
    assert recorder.scheduler.loads == loads + 1
    st = actions.status()
    assert st["model"] == "tiny-qwen3-vl-ov" and st["demo"] is True and st["state"] == "ready"


def test_icon_docks_when_the_tray_host_starts_later_and_again_after_it_restarts(xvfb_display: XvfbDisplay) -> None:
    """Login order is not guaranteed: an icon started before the panel docks once the panel appears."""
    from qwen_tray.ui.xtray import XTrayIcon

    d = xvfb_display
    icon = XTrayIcon("qwen-tray: ready", draw_icon("ready"), display_name=d.display)
    icon.start()
    try:
        assert not icon.docked.wait(0.5)  # no tray host yet
        d.start_tray()
        assert icon.docked.wait(15), "the icon did not dock when the tray host started"
        assert "trayer" in _ancestor_classes(d, icon.window_id)
        # The panel dies and comes back (a desktop session restart): the icon docks again.
        assert d.tray is not None
        d.tray.terminate()
        d.tray.wait(5)
        for _ in range(100):
            if not icon.docked.is_set():
                break
            threading.Event().wait(0.05)
        assert not icon.docked.is_set()  # it noticed the tray went away
        d.start_tray()
        assert icon.docked.wait(15), "the icon did not dock again"
        assert "trayer" in _ancestor_classes(d, icon.window_id)
    finally:
        icon.stop()


# -- the X11 menu and the icon's shape -------------------------------------------------------------------------
def _wait(cond: Any, timeout: float, what: str, root: tk.Tk | None = None) -> None:
    deadline = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        if root is not None:
            root.update()
        deadline.wait(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_right_click_opens_the_same_menu_as_windows_and_its_items_work(
        tray_host: XvfbDisplay, tk_root: tk.Tk, app_parts: dict[str, Any]) -> None:
    import pystray

    from qwen_tray.ui.tkmenu import TkTrayMenu

    d = tray_host
    actions: Actions = app_parts["actions"]
    popup = TkTrayMenu(tk_root, app_parts["inbox"].post)
    tray = Tray(actions, popup_menu=popup)
    tray.start()
    try:
        assert tray.icon.docked.wait(10), "the tray host did not embed the icon"
        x, y, w, h = d.window_geometry(tray.icon.window_id)

        def right_click() -> tk.Menu:
            opened = popup.opened
            for attempt in range(3):  # the tray host may still move the icon it just embedded: aim again
                x, y, w, h = d.window_geometry(tray.icon.window_id)
                run_while_pumping(tk_root, ["xdotool", "mousemove", str(x + w // 2), str(y + h // 2), "click", "3"],
                                  d.env())
                try:
                    pump(tk_root, lambda: popup.opened > opened and popup.menu is not None
                         and popup.menu.winfo_ismapped(), 5 if attempt < 2 else 10, "the tray menu")
                    break
                except AssertionError:
                    if attempt == 2:
                        raise
            settle(tk_root, 0.3)  # mapped as far as Tk knows; let the server show it before clicking in it
            assert popup.menu is not None
            return popup.menu

        menu = right_click()
        labels = [menu.entrycget(i, "label") for i in range(int(menu.index("end")) + 1)
                  if menu.type(i) != "separator"]
        pystray_labels = [str(i.text) for i in tray.menu().items if i is not pystray.Menu.SEPARATOR]
        assert labels == pystray_labels  # the same items as the Windows menu, in the same order
        assert "Quit" in labels and "Pause hotkeys" in labels and "Ask about clipboard image" in labels
        index = {menu.entrycget(i, "label"): i for i in range(int(menu.index("end")) + 1)
                 if menu.type(i) != "separator"}
        assert menu.entrycget(index["tiny-qwen3-vl-ov on CPU (CPU) (demo model)"], "state") == "disabled"
        pause = index["Pause hotkeys"]
        assert menu.type(pause) == "checkbutton" and menu.entrycget(pause, "underline") == 0
        # A real click on "Pause hotkeys" pauses the real hotkeys.
        mx = menu.winfo_rootx() + menu.winfo_width() // 2
        my = menu.winfo_rooty() + menu.yposition(pause) + 4
        run_while_pumping(tk_root, ["xdotool", "mousemove", str(mx), str(my), "click", "1"], d.env())
        _wait(lambda: app_parts["hotkeys"].paused, 10, "the hotkeys to pause", tk_root)
        pump(tk_root, lambda: not menu.winfo_ismapped(), 10, "the menu to close")
        # Open again: the check mark follows the state; Esc closes it without doing anything.
        menu = right_click()
        assert tk_root.getvar(menu.entrycget(pause, "variable")) in (1, True, "1")
        run_while_pumping(tk_root, ["xdotool", "key", "Escape"], d.env())
        pump(tk_root, lambda: not menu.winfo_ismapped(), 10, "Esc to close the menu")
        assert app_parts["hotkeys"].paused and app_parts["quits"] == []
        # The underlined letter picks an item from the keyboard: q = Quit.
        right_click()
        run_while_pumping(tk_root, ["xdotool", "key", "q"], d.env())
        _wait(lambda: app_parts["quits"] == ["quit"], 10, "Quit", tk_root)
        # A left click still asks about the screen.
        run_while_pumping(tk_root, ["xdotool", "mousemove", str(x + w // 2), str(y + h // 2), "click", "1"],
                          d.env())
        pump(tk_root, lambda: app_parts["desk"].popup is not None, 10, "the popup after a left click")
    finally:
        tray.stop()
        app_parts["hotkeys"].pause(False)


def test_fit_icon_keeps_the_aspect_and_centres() -> None:
    from qwen_tray.ui.xtray import fit_icon

    icon = Image.new("RGBA", (64, 64), (200, 30, 30, 255))
    out = fit_icon(icon, (16, 30))
    assert out.size == (16, 30)
    assert out.getbbox() == (0, 7, 16, 23)  # a 16x16 square, 7 rows of padding above and below
    wide = fit_icon(icon, (40, 20))
    assert wide.getbbox() == (10, 0, 30, 20)


def test_the_docked_icon_is_not_stretched_in_a_tall_slot(xvfb_display: XvfbDisplay) -> None:
    """A 30 px tray panel gives the icon a tall slot (16x28): the icon stays square, centred, not stretched."""
    from xvfb import TRAYER_ARGS

    from qwen_tray.ui.xtray import XTrayIcon

    d = xvfb_display
    d.tray = subprocess.Popen(["trayer", *TRAYER_ARGS, "--height", "30"], env=d.env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # a 30 px panel; stop() ends it
    for _ in range(300):
        if d.tray_owner() is not None:
            break
        threading.Event().wait(0.05)
    threading.Event().wait(1.0)  # trayer owns the selection a moment before it handles dock requests
    icon = XTrayIcon("qwen-tray: ready", draw_icon("ready"), display_name=d.display)
    icon.start()
    try:
        assert icon.docked.wait(15)
        x, y, w, h = d.window_geometry(icon.window_id)
        for _ in range(100):
            if h >= w + 8:
                break
            threading.Event().wait(0.05)
            x, y, w, h = d.window_geometry(icon.window_id)
        assert h >= w + 8, (w, h)  # a tall, narrow slot (16x28 here)
        box = None
        for _ in range(100):  # the icon's thread redraws on ConfigureNotify
            shot = capture.region(capture.Rect(x, y, w, h)).image
            lit = shot.convert("L").point(lambda v: 255 if v > 20 else 0)
            box = lit.getbbox()
            if box is not None and box[3] - box[1] <= w + 1:
                break
            threading.Event().wait(0.05)
        assert box is not None
        left, top, right, bottom = box
        assert right - left >= w - 2 and bottom - top <= w + 1, box  # as high as it is wide, not 30
        pad = (h - w) // 2
        assert abs(top - pad) <= 2 and abs((h - bottom) - pad) <= 2, box  # centred in the 30 rows
    finally:
        icon.stop()
