"""`qwen-tray run` with a display, end to end: the real app in a subprocess on Xvfb (with trayer), driven by xdotool.

How the test sees what the popup does without putting screen content on disk: the popup's state is in its
window title ("qwen-tray - Answered"), the answer is read back from the X clipboard after Ctrl+C (the user's own
path), and at log level DEBUG the app logs metadata only: request numbers, message counts, image sizes and
answer lengths, never the question, the answer or pixels.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import qwen_tray_cmd
from xvfb import XvfbDisplay, XvfbError

from qwen_tray.paths import default_paths

QUESTION = "What does this error mean"
FAKE_APP = r"""
import tkinter as tk
r = tk.Tk(); r.title("build log"); r.geometry("760x330+120+110"); r.configure(bg="#1e1e1e")
t = tk.Text(r, bg="#1e1e1e", fg="#d4d4d4", font=("DejaVu Sans Mono", 11), borderwidth=0, padx=12, pady=10)
t.insert("end", "$ python -m app --config settings.toml\nTraceback (most recent call last):\n"
         "  File \"app/__main__.py\", line 12, in <module>\n    main()\n"
         "  File \"app/config.py\", line 40, in load\n    with open(path) as f:\n"
         "FileNotFoundError: [Errno 2] No such file or directory: 'settings.toml'\n$ ")
t.pack(fill="both", expand=True); r.mainloop()
"""


def wait_until(cond, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class App:
    """The app as a subprocess, its log file, and helpers to wait for log lines."""

    def __init__(self, d: XvfbDisplay, config: str, env_extra: dict[str, str] | None = None) -> None:
        self.paths = default_paths()
        self.paths.config_file.parent.mkdir(parents=True, exist_ok=True)
        self.paths.config_file.write_text(config)
        env = d.env(**(env_extra or {}))
        self.proc = subprocess.Popen([*qwen_tray_cmd(), "run"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)

    def log(self) -> str:
        try:
            return self.paths.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 60.0, count: int = 1) -> list[str]:
        def found() -> bool:
            assert self.proc.poll() is None or count == 0, f"the app exited early:\n{self.log()[-3000:]}"
            return len(re.findall(pattern, self.log(), re.MULTILINE)) >= count

        wait_until(found, timeout, f"/{pattern}/ in the log")
        return re.findall(pattern, self.log(), re.MULTILINE)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            if self.proc.stderr:
                self.proc.stderr.close()


@pytest.fixture
def fake_app(xvfb_tray: XvfbDisplay):  # noqa: ANN201
    xvfb_tray.set_root_color((38, 64, 96))
    p = subprocess.Popen([sys.executable, "-c", FAKE_APP], env=xvfb_tray.env())
    xvfb_tray.wait_for_window("^build log$", timeout=15)
    yield p
    p.terminate()
    p.wait(5)


def clipboard(d: XvfbDisplay) -> str:
    """The CLIPBOARD's text; "" while nobody owns it yet (the app takes it a moment after Ctrl+C: xclip exits 1)."""
    out = subprocess.run(["xclip", "-o", "-selection", "clipboard"], env=d.env(), capture_output=True, text=True,
                         timeout=10)
    return out.stdout if out.returncode == 0 else ""


def test_hotkeys_popup_region_tray_and_clean_stop(xvfb_tray: XvfbDisplay, fake_app: object,
                                                  artifacts_dir: Path) -> None:
    d = xvfb_tray
    app = App(d, '[log]\nlevel = "DEBUG"\n[generation]\nmax_new_tokens = 40\n')
    try:
        app.wait_log(r"desktop ready")
        app.wait_log(r"model tiny-qwen3-vl-ov ready")
        # The tray icon is docked in trayer and its name (the tooltip) says ready, with the demo model.
        d.wait_for_window(r"^qwen-tray: ready \| tiny-qwen3-vl-ov \| CPU \(CPU\) \| demo model$", 15, visible=False)
        tree = d.run("xwininfo", "-tree", "-root", check=False, timeout=10)
        panel = tree.split('"panel": ("panel" "trayer")')[1]
        assert "qwen-tray: ready" in panel.split('"trayer"')[0]  # nested under trayer's panel

        # Hotkey -> capture of the monitor under the cursor -> popup with the focus in the question box.
        d.xdotool("mousemove", "400", "250")
        d.xdotool("key", "ctrl+alt+q")
        d.wait_for_window("^qwen-tray - Ask about the screen$", 15)
        app.wait_log(r"popup: image 1920x1080")
        d.xdotool("type", "--delay", "10", QUESTION)
        d.xdotool("key", "Return")
        d.wait_for_window("^qwen-tray - Answered$", 60)
        lines = app.wait_log(r"popup: request (\d+) (?:stop|length), (\d+) characters")
        chars = int(lines[-1][1])
        assert chars > 0
        assert re.search(r"popup: request \d+, 1 message\(s\), image 1920x1080", app.log())
        d.screenshot(artifacts_dir / "app-popup.png")

        # Ctrl+C puts the answer on the X clipboard; it is what the popup showed (same length as logged).
        d.xdotool("key", "ctrl+c")
        wait_until(lambda: len(clipboard(d)) == chars, 10, "the answer on the clipboard")

        # A follow-up continues the conversation: user, assistant, user.
        d.xdotool("type", "and how do I fix it?")
        d.xdotool("key", "Return")
        app.wait_log(r"popup: request \d+, 3 message\(s\)")
        app.wait_log(r"popup: request (\d+) (?:stop|length), (\d+) characters", count=2)

        # Esc closes the popup.
        d.xdotool("key", "Escape")
        wait_until(lambda: d.run("xdotool", "search", "--onlyvisible", "--name", "^qwen-tray - ",
                                 check=False) == "", 10, "the popup to close")

        # Region hotkey: drag a rectangle; the popup gets exactly that many pixels; the engine gets that image.
        d.xdotool("key", "ctrl+alt+r")
        d.wait_for_window("^qwen-tray region$", 15)
        d.xdotool("mousemove", "140", "150", "mousedown", "1")
        d.xdotool("mousemove", "400", "300")
        d.xdotool("mousemove", "700", "330")
        time.sleep(0.3)
        d.screenshot(artifacts_dir / "app-region.png")
        d.xdotool("mouseup", "1")
        d.wait_for_window("^qwen-tray - Ask about the screen$", 15)
        app.wait_log(r"region: selected 560x180 at \+140\+150")
        app.wait_log(r"popup: image 560x180")
        d.xdotool("key", "Return")
        app.wait_log(r"popup: request \d+, 1 message\(s\), image 560x180")
        d.wait_for_window("^qwen-tray - Answered$", 60)
        d.screenshot(artifacts_dir / "app-popup-region.png")
        d.xdotool("key", "Escape")

        # Region hotkey, then Esc: nothing is sent.
        requests = len(re.findall(r"popup: request \d+, ", app.log()))
        d.xdotool("key", "ctrl+alt+r")
        d.wait_for_window("^qwen-tray region$", 15)
        d.xdotool("key", "Escape")
        app.wait_log(r"region: cancelled")
        time.sleep(0.5)
        assert d.run("xdotool", "search", "--onlyvisible", "--name", "^qwen-tray( -| region)", check=False) == ""
        assert len(re.findall(r"popup: request \d+, ", app.log())) == requests

        # Privacy: the log has metadata only, even at DEBUG.
        log = app.log()
        assert QUESTION not in log and "how do I fix it" not in log
        assert not (app.paths.models_dir.parent / "history.jsonl").exists()  # ui.history is off by default
    finally:
        code = app.stop(signal.SIGTERM)
    assert code == 0, app.log()[-3000:]
    log = app.log()
    assert "desktop stopped" in log and "qwen_tray.service: stopped" in log
    assert not app.paths.connection_file.exists()


GRABBER = r"""
import sys
from Xlib import XK, X, display
d = display.Display()
keycode = d.keysym_to_keycode(XK.string_to_keysym("q"))
for extra in (0, X.LockMask, X.Mod2Mask, X.LockMask | X.Mod2Mask):
    d.screen().root.grab_key(keycode, X.ControlMask | X.Mod1Mask | extra, True, X.GrabModeAsync, X.GrabModeAsync)
d.sync()
print("grabbed", flush=True)
sys.stdin.read()  # hold ctrl+alt+q until the test closes our stdin
"""


def test_a_taken_hotkey_is_noticed_retried_until_free_and_the_rest_works_then_qwen_tray_stop(
        xvfb_tray: XvfbDisplay, artifacts_dir: Path) -> None:
    d = xvfb_tray
    other = subprocess.Popen([sys.executable, "-c", GRABBER], env=d.env(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # "another program" holding ctrl+alt+q
    assert other.stdout is not None and other.stdout.readline().strip() == "grabbed"
    app = App(d, '[log]\nlevel = "DEBUG"\n')
    try:
        app.wait_log(r"desktop ready")
        # The log tells the truth: which hotkey works, which does not, and no line claims both work.
        assert re.search(r"hotkeys: ctrl\+alt\+r asks about a region \(not working: ctrl\+alt\+q \(the screen\) "
                         r"is held by another program\)", app.log()), app.log()[-3000:]
        assert "ctrl+alt+q asks about" not in app.log()
        # Said once, on screen: a notice (and the tooltip).
        d.wait_for_window("^qwen-tray notice$", 30)
        d.screenshot(artifacts_dir / "app-hotkey-notice.png")
        d.wait_for_window(r"^qwen-tray: .*ctrl\+alt\+q \(the screen\) is held by another program", 30, visible=False)
        # The other hotkey works; the notice goes away before the capture (it must not be in the screenshot).
        d.xdotool("key", "ctrl+alt+r")
        try:  # a hang guard, not a speed figure
            d.wait_for_window("^qwen-tray region$", 60)
        except XvfbError as exc:
            raise AssertionError(f"{exc}; the app's log:\n{app.log()[-4000:]}") from None
        assert d.run("xdotool", "search", "--onlyvisible", "--name", "^qwen-tray notice$", check=False) == ""
        d.xdotool("key", "Escape")
        app.wait_log(r"region: cancelled")
        assert app.log().count("notice shown") == 1  # once
        # The other program lets go: qwen-tray takes the hotkey (a slow backoff, at most 30 s apart) and says so.
        other.stdin.close()
        other.wait(10)
        app.wait_log(r"hotkey ctrl\+alt\+q is free now: it asks about the screen", timeout=90)
        d.wait_for_window(r"^qwen-tray: ready \| tiny-qwen3-vl-ov \| CPU \(CPU\) \| demo model$", 60, visible=False)
        d.xdotool("key", "ctrl+alt+q")  # a real key press now opens the popup
        d.wait_for_window("^qwen-tray - Ask about the screen$", 30)
        d.xdotool("key", "Escape")
        assert json.loads(app.paths.connection_file.read_text())["pid"] == app.proc.pid
        out = subprocess.run([*qwen_tray_cmd(), "stop"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert app.proc.wait(30) == 0
    finally:
        app.stop()
        if other.poll() is None:
            other.kill()
            other.wait(5)
    assert "desktop stopped" in app.log()
    assert not app.paths.connection_file.exists()


def test_the_tray_menu_on_linux_pauses_the_hotkeys_and_quits(xvfb_tray: XvfbDisplay) -> None:
    """A real right click on the docked icon opens the menu; its items are picked as a user would."""
    d = xvfb_tray
    app = App(d, '[log]\nlevel = "DEBUG"\n')
    try:
        app.wait_log(r"desktop ready")
        wid = d.wait_for_window(r"^qwen-tray: ", 30, visible=False)
        x, y, w, h = d.window_geometry(wid)
        d.xdotool("mousemove", str(x + w // 2), str(y + h // 2), "click", "3")
        app.wait_log(r"tray menu opened")
        d.xdotool("key", "p")  # "Pause hotkeys" (its underlined letter)
        app.wait_log(r"hotkeys paused")
        d.xdotool("key", "ctrl+alt+q")  # swallowed while paused
        time.sleep(1.0)
        assert d.run("xdotool", "search", "--onlyvisible", "--name", "^qwen-tray - ", check=False) == ""
        d.xdotool("mousemove", str(x + w // 2), str(y + h // 2), "click", "3")
        app.wait_log(r"tray menu opened", count=2)
        d.xdotool("key", "q")  # "Quit"
        assert app.proc.wait(30) == 0
    finally:
        app.stop()
    log = app.log()
    assert "tray menu: Pause hotkeys" in log and "tray menu: Quit" in log
    assert "desktop stopped" in log and "qwen_tray.service: stopped" in log


def test_tray_can_be_hidden_and_ctrl_c_ends_the_app(xvfb_tray: XvfbDisplay) -> None:
    app = App(xvfb_tray, "[ui]\nshow_tray = false\n")
    try:
        app.wait_log(r"desktop ready")
        assert "tray icon hidden (ui.show_tray = false)" in app.log()
        assert xvfb_tray.run("xdotool", "search", "--name", "^qwen-tray: ", check=False) == ""
        # One instance per user session: a second `run` says so and exits; the first is untouched.
        second = subprocess.run([*qwen_tray_cmd(), "run"], env=xvfb_tray.env(), capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 1 and "already running" in second.stderr
        assert app.proc.poll() is None
        app.proc.send_signal(signal.SIGINT)
        assert app.proc.wait(30) == 0
    finally:
        app.stop()
    assert "desktop stopped" in app.log()


def test_without_a_display_it_says_so_once_and_serves_headless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    paths = default_paths()
    proc = subprocess.Popen([*qwen_tray_cmd(), "run"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: paths.connection_file.exists(), 60, "the connection file")
        out = subprocess.run([*qwen_tray_cmd(), "status", "--json"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(90)  # a hang guard: it once took more than 30 s on a loaded CI machine
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"no exit 90 s after SIGTERM; its stderr:\n{proc.communicate()[1]}") from None
        assert rc == 0, f"exit {rc}; its stderr:\n{proc.stderr.read() if proc.stderr else ''}"
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
    log = paths.log_file.read_text()
    assert log.count("there is no display ($DISPLAY is not set): serving headless") == 1
    assert "desktop ready" not in log
