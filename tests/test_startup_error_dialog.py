"""`qwen-tray run` started without a terminal (a launcher, autostart) shows an error that stops it on screen.

The app runs as a subprocess on its own Xvfb with stdin from /dev/null and stderr to a pipe, as a desktop
launcher starts it. The dialog's text is read back the user's way: its Copy (Ctrl+C) puts it on the X clipboard.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from conftest import qwen_tray_cmd
from xvfb import XvfbDisplay

from qwen_tray.paths import default_paths

BAD_CONFIG = "[generation]\nmax_new_tokens = -3\n"


def _clipboard(d: XvfbDisplay) -> str:
    return subprocess.run(["xclip", "-o", "-selection", "clipboard"], env=d.env(), capture_output=True, text=True,
                          timeout=10).stdout


def test_a_config_error_without_a_terminal_is_shown_in_a_dialog(xvfb_display: XvfbDisplay, artifacts_dir: Path) -> None:
    d = xvfb_display
    paths = default_paths()
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(BAD_CONFIG)
    proc = subprocess.Popen([*qwen_tray_cmd(), "run"], env=d.env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wid = d.wait_for_window("^qwen-tray error$", 60)
        assert proc.poll() is None  # it waits for the user, like Windows' message box
        d.screenshot(artifacts_dir / "startup-error-dialog.png")
        d.xdotool("windowfocus", "--sync", str(wid))
        d.xdotool("key", "ctrl+c")
        deadline = time.monotonic() + 15
        while "max_new_tokens" not in (text := _clipboard(d)):
            assert time.monotonic() < deadline, f"the clipboard holds {text!r}"
            time.sleep(0.1)  # test-side wait for xclip and the other process
        assert "qwen-tray: error:" in text and str(paths.config_file) in text and "Details:" in text
        d.xdotool("key", "Return")  # OK
        assert proc.wait(30) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
    assert "max_new_tokens" in err  # still on stderr as well
    assert "max_new_tokens" in paths.log_file.read_text()  # and in the log the dialog points at


def test_with_a_terminal_or_headless_there_is_no_dialog(xvfb_display: XvfbDisplay) -> None:
    """A terminal reads stderr itself; `run --headless` has no desktop: both just exit 2 with the message."""
    d = xvfb_display
    paths = default_paths()
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(BAD_CONFIG)
    headless = subprocess.run([*qwen_tray_cmd(), "run", "--headless"], env=d.env(), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)
    assert headless.returncode == 2 and "max_new_tokens" in headless.stderr
    # A pseudo-terminal on stdin, as a shell gives: the message on stderr is enough.
    import pty

    leader, follower = pty.openpty()
    try:
        tty = subprocess.run([*qwen_tray_cmd(), "run"], env=d.env(), stdin=follower, capture_output=True,
                             text=True, timeout=60)
    finally:
        import os

        os.close(leader)
        os.close(follower)
    assert tty.returncode == 2 and "max_new_tokens" in tty.stderr
    assert d.run("xdotool", "search", "--name", "^qwen-tray error$", check=False) == ""
