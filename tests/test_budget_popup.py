"""The popup tells the user when a follow-up left older turns out (on Xvfb, the real scheduler and tiny model).

The NPU is simulated as elsewhere: the real engine on the CPU, its placement saying the language model is
on the NPU, and a small `npu.max_prompt_len`, so the second follow-up already has to give way.
"""

from __future__ import annotations

import tkinter as tk

from PIL import Image
from servicetools import TestEngine, wait_for
from uitools import Recorder, pump

from qwen_tray.engine.base import GenerationOptions
from qwen_tray.scheduler import Scheduler
from qwen_tray.ui.popup import AnswerPopup, PopupSettings


def test_the_status_line_says_what_was_left_out(tk_root: tk.Tk, ui_display) -> None:  # noqa: ANN001
    engine = TestEngine(language_device="NPU")
    s = Scheduler(lambda: engine, npu_max_prompt_len=300, demo=True)
    s.start()
    popup = None
    try:
        assert wait_for(lambda: s.status()["state"] == "ready")
        rec = Recorder(s)
        settings = PopupSettings(options=GenerationOptions(max_new_tokens=100))
        popup = AnswerPopup(tk_root, rec, Image.new("RGB", (1280, 800), (20, 40, 160)), (100, 100, 640, 400),
                            (0, 0, 1920, 1080), settings)
        statuses = []
        for n, question in enumerate(("What is this?", "And the colour?", "Anything else?")):
            popup.ask(question)
            pump(tk_root, lambda n=n: popup.state in ("done", "error") and len(rec.jobs) == n + 1, 60,
                 f"answer {n + 1}")
            assert popup.state == "done", popup.status.cget("text")
            statuses.append(popup.status.cget("text"))
            assert engine.results[-1].figures.prompt_tokens <= 300
        shown = popup.answer_text()
    finally:
        if popup is not None:
            popup.close()
        s.stop()
    assert "left out" not in statuses[0] and "shrank" not in statuses[0]
    last = statuses[-1]
    assert last.startswith("Done \u00b7 ") and ("left out" in last or "shrank" in last), last
    assert "\n" not in last  # one line
    # The popup keeps the whole conversation on screen; only what the model was sent was trimmed.
    assert "What is this?" in shown and "Anything else?" in shown
