"""The desktop with the trained demo model: the popup's answer names the colour of what was captured.

Two monitors under Xvfb (RandR monitors on one wide screen, as mss sees a real two-monitor desk): the left one
painted half green, half blue, the right one yellow. A region dragged over the blue half must be answered
"blue" (a crop from the wrong place or monitor would name another colour), and the screen hotkey with the
pointer on the right monitor "yellow" (the wrong monitor would be green/blue). The answer is read back from
the X clipboard after Ctrl+C, the user's own path.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from test_app_desktop import App, clipboard, wait_until
from xvfb import XvfbDisplay

pytestmark = pytest.mark.desktop

NOTE = " (This is qwen-tray's demo model: run `qwen-tray model pull` for real answers.)"
GREEN, BLUE, YELLOW = (0, 200, 0), (0, 0, 255), (255, 255, 0)


@pytest.fixture
def desk(monkeypatch: pytest.MonkeyPatch, demo_model: Path) -> Iterator[XvfbDisplay]:
    with XvfbDisplay(width=3200, height=1080, tray=True) as d:
        monkeypatch.setenv("DISPLAY", d.display)
        d.set_monitors([(0, 0, 1920, 1080), (1920, 0, 1280, 1024)])
        d.set_root_color((0, 0, 0))
        d.paint(0, 0, 960, 1080, GREEN)
        d.paint(960, 0, 960, 1080, BLUE)
        d.paint(1920, 0, 1280, 1024, YELLOW)
        yield d


def ask_and_copy(d: XvfbDisplay, app: App, question: str, done_count: int, shot: Path | None = None) -> str:
    """Type a question in the open popup, wait for the answer, copy it with Ctrl+C and return it."""
    if question:
        d.xdotool("type", "--delay", "10", question)
    d.xdotool("key", "Return")
    d.wait_for_window("^qwen-tray - Answered$", 90)
    app.wait_log(r"popup: request \d+ (?:stop|length), \d+ characters", count=done_count)
    if shot is not None:
        d.screenshot(shot)  # what a person sees: the answer and the demo note under the title
    d.xdotool("key", "ctrl+c")
    app.wait_log(r"popup: copied \d+ characters", count=done_count)
    wait_until(lambda: clipboard(d).startswith("Mostly"), 15, "the answer on the clipboard")
    return clipboard(d)


def test_region_over_blue_says_blue_and_the_yellow_monitor_says_yellow(desk: XvfbDisplay, artifacts_dir: Path
                                                                      ) -> None:
    d = desk
    app = App(d, '[log]\nlevel = "DEBUG"\n')
    try:
        app.wait_log(r"desktop ready")
        app.wait_log(r"model demo-qwen3-vl-ov ready", timeout=120)

        # Region hotkey, drag inside the blue half of the left monitor.
        d.xdotool("mousemove", "600", "500")
        d.xdotool("key", "ctrl+alt+r")
        d.wait_for_window("^qwen-tray region$", 15)
        d.xdotool("mousemove", "1100", "150", "mousedown", "1")
        d.xdotool("mousemove", "1400", "500")
        d.xdotool("mousemove", "1800", "900")
        d.xdotool("mouseup", "1")
        d.wait_for_window("^qwen-tray - Ask about the screen$", 15)
        app.wait_log(r"region: selected 700x750 at \+1100\+150")
        shot = artifacts_dir / "demo-region-blue.png"
        assert ask_and_copy(d, app, "What is this?", 1, shot) == "Mostly blue." + NOTE
        d.xdotool("key", "Escape")

        # Screen hotkey with the pointer on the right (yellow) monitor.
        d.xdotool("mousemove", "2500", "500")
        d.xdotool("key", "ctrl+alt+q")
        d.wait_for_window("^qwen-tray - Ask about the screen$", 15)
        app.wait_log(r"popup: image 1280x1024")
        shot = artifacts_dir / "demo-screen-yellow.png"
        assert ask_and_copy(d, app, "What is on my screen?", 2, shot) == "Mostly yellow." + NOTE

        # A follow-up keeps the image: still yellow.
        assert ask_and_copy(d, app, "Are you sure?", 3) == "Mostly yellow." + NOTE
        d.xdotool("key", "Escape")
    finally:
        code = app.stop(signal.SIGTERM)
    assert code == 0, app.log()[-3000:]


def test_demo_screenshot_pixels_are_what_the_harness_painted(desk: XvfbDisplay, tmp_path: Path) -> None:
    """The harness itself: the painted layout is on screen (so a wrong answer above is the app's fault)."""
    shot = Image.open(desk.screenshot(tmp_path / "desk.png")).convert("RGB")
    assert shot.getpixel((400, 500)) == GREEN and shot.getpixel((1500, 500)) == BLUE
    assert shot.getpixel((2500, 500)) == YELLOW
