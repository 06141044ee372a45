"""Draw the popup's screenshots in docs/ (light and dark, streaming and done, with a code block) under Xvfb.

    PYTHONPATH=. .venv/bin/python docs/make_screenshots.py [--out docs]

THE ANSWERS IN THESE PICTURES ARE FAKE. The demo model only names a colour and can't write a code block, so this
script drives the real popup (daemon/ui/popup.py, real Tk, real theme, real Markdown rendering) with a canned
answer stream (`FakeStream` below) instead of the scheduler. Nothing else is faked: the window, its placement
(a whole-screen ask goes to the corner away from the pointer) and its look are what a user gets.
Needs Xvfb (installer/dev-setup.sh installs it). Writes docs/screenshot-popup-*.png.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tkinter as tk
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' Xvfb helper

from xvfb import XvfbDisplay  # noqa: E402

from qwen_tray.engine.base import Figures, GenerationOptions, GenerationResult  # noqa: E402
from qwen_tray.jobs import Job  # noqa: E402
from qwen_tray.ui.popup import AnswerPopup, PopupSettings  # noqa: E402

SCREEN = (1600, 900)
QUESTION = "What does this error mean?"
ANSWER = (
    "Python could not open **settings.toml**: the file is not in the folder the app was started from.\n\n"
    "- `open(path)` in `app/config.py` looks for it relative to the *current* directory.\n"
    "- Start the app from the project folder, or pass a full path:\n\n"
    "```bash\n"
    "cd ~/projects/app\n"
    "python -m app --config \"$PWD/settings.toml\"\n"
    "```\n\n"
    "If the file does not exist yet, copy `settings.example.toml` to `settings.toml` first."
)
EDITOR = (
    "$ python -m app --config settings.toml\n"
    "Traceback (most recent call last):\n"
    "  File \"app/__main__.py\", line 12, in <module>\n"
    "    main()\n"
    "  File \"app/config.py\", line 40, in load\n"
    "    with open(path) as f:\n"
    "FileNotFoundError: [Errno 2] No such file or directory: 'settings.toml'\n"
    "$ "
)


class FakeStream:
    """FAKE: stands in for the scheduler and hands the popup a canned answer, chunk by chunk, when told to."""

    def __init__(self) -> None:
        self.job: Job | None = None

    def submit(self, job: Job) -> int:
        self.job = job
        return 0

    def cancel(self, job: Job) -> None:
        pass

    def stream(self, upto: int) -> None:
        assert self.job is not None
        self.job.sink.on_start()
        for i in range(0, upto, 7):
            self.job.sink.on_chunk(ANSWER[i:min(i + 7, upto)])

    def finish(self, sent: int) -> None:
        assert self.job is not None
        if sent < len(ANSWER):
            self.job.sink.on_chunk(ANSWER[sent:])
        figures = Figures(prompt_tokens=812, completion_tokens=96, ttft_ms=420.0, total_ms=4600.0, tokens_per_s=22.9)
        self.job.sink.on_done(GenerationResult(ANSWER, "stop", figures), 0.0, False)


def pump(root: tk.Tk, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        root.update()
        time.sleep(0.01)


def desktop(root: tk.Tk) -> tk.Toplevel:
    """The "app" the user asks about: a terminal with a traceback, at the left of the screen."""
    win = tk.Toplevel(root)
    win.overrideredirect(True)
    win.geometry("700x330+60+80")
    text = tk.Text(win, bg="#1e1e1e", fg="#d4d4d4", font=("DejaVu Sans Mono", 11), borderwidth=0, padx=14, pady=12)
    text.insert("end", EDITOR)
    text.pack(fill="both", expand=True)
    return win


def shoot(d: XvfbDisplay, popup: AnswerPopup | None, path: Path, margin: int = 20) -> None:
    d.screenshot(path)
    if popup is not None:
        x, y, w, h = popup.rect()
        img = Image.open(path)
        img.crop((max(0, x - margin), max(0, y - margin), min(img.width, x + w + margin),
                  min(img.height, y + h + margin))).save(path)
    print("wrote", path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    with XvfbDisplay(*SCREEN) as d:
        os.environ["DISPLAY"] = d.display
        d.set_root_color((58, 84, 120))
        root = tk.Tk()
        root.withdraw()
        desktop(root)
        pump(root, 0.3)
        shot = Image.frombytes("RGB", SCREEN, bytes(3 * SCREEN[0] * SCREEN[1]))  # stands for the capture
        d.xdotool("mousemove", "300", "240")  # the pointer on the traceback: the popup goes to the far corner
        for mode in ("light", "dark"):
            fake = FakeStream()
            settings = PopupSettings(presets=["Describe", "Extract text", "Explain this error",
                                              "Translate to English"],
                                     options=GenerationOptions(max_new_tokens=512), theme=mode)
            from qwen_tray import capture

            shot = capture.monitor_under_cursor().image
            popup = AnswerPopup(root, fake, shot, (0, 0, *SCREEN), (0, 0, *SCREEN), settings, cursor=(300, 240))
            pump(root, 0.5)
            popup.question.insert("1.0", QUESTION)
            popup._show_placeholder()
            pump(root, 0.2)
            if mode == "light":
                shoot(d, popup, args.out / "screenshot-popup-light-ready.png")
            popup.ask(popup.question.get("1.0", "end-1c"))
            half = ANSWER.index("```bash") + 40
            fake.stream(half)
            pump(root, 0.5)
            shoot(d, popup, args.out / f"screenshot-popup-{mode}-streaming.png")
            fake.finish(half)
            pump(root, 0.5)
            shoot(d, popup, args.out / f"screenshot-popup-{mode}-done.png")
            if mode == "light":
                shoot(d, None, args.out / "screenshot-popup-placement.png")
            popup.close()
            pump(root, 0.2)
        root.destroy()


if __name__ == "__main__":
    main()
