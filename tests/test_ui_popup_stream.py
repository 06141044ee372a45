"""The popup while an answer streams: events come through the inbox (no timer at all), and rendering is
incremental (each complete line rendered once) yet shows exactly what rendering the whole answer shows."""

from __future__ import annotations

import threading
import tkinter as tk
from typing import Any

import pytest
from PIL import Image
from uitools import pump
from xvfb import XvfbDisplay

import qwen_tray.ui.popup as popup_module
from qwen_tray.engine.base import Figures, GenerationOptions, GenerationResult
from qwen_tray.jobs import Job
from qwen_tray.ui import markdown
from qwen_tray.ui.popup import AnswerPopup, PopupSettings

TAGS = (markdown.BOLD, markdown.CODE, markdown.CODEBLOCK, markdown.BULLET, markdown.HEADING)


class HeldSubmitter:
    """Accepts the popup's job and lets the test play the engine: chunks from another thread, as genai does."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> int:
        self.jobs.append(job)
        return 0

    def cancel(self, job: Job) -> None:
        job.cancel.set()


def from_another_thread(fn: Any, *args: Any) -> None:
    t = threading.Thread(target=fn, args=args)
    t.start()
    t.join()


def answer_text() -> str:
    """About 12 KB of Markdown: paragraphs, bullets, headings, bold, inline code and fenced code."""
    parts = []
    for i in range(60):
        parts.append(f"## Part {i}\n")
        parts.append(f"Some **bold {i}** words and `code {i}` in a longer paragraph of text number {i}.\n")
        parts.append(f"- item {i}\n- another **item**\n")
        if i % 7 == 0:
            parts.append("```python\nx = 1  # **not bold** here\n```\n")
    return "".join(parts)


def shown(widget: tk.Text) -> tuple[str, dict[str, list[str]]]:
    text = widget.get("1.0", "end-1c")
    tagged = {}
    for tag in TAGS:
        r = widget.tag_ranges(tag)
        tagged[tag] = [widget.get(r[i], r[i + 1]) for i in range(0, len(r), 2)]
    return text, tagged


@pytest.mark.desktop
def test_streaming_renders_incrementally_through_the_inbox_without_timers(
        tk_root: tk.Tk, ui_display: XvfbDisplay, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered: list[int] = []
    real_render = markdown.render

    def counting_render(text: str) -> list[markdown.Span]:
        rendered.append(len(text))
        return real_render(text)

    monkeypatch.setattr(popup_module.markdown, "render", counting_render)
    submitter = HeldSubmitter()
    settings = PopupSettings(options=GenerationOptions(max_new_tokens=4000))
    popup = AnswerPopup(tk_root, submitter, Image.new("RGB", (64, 48)), (10, 10, 64, 48), (0, 0, 1280, 1024),
                        settings)
    reference = tk.Text(tk_root)
    try:
        assert popup.ask("")  # the default prompt: no question line above the answer
        (job,) = submitter.jobs
        full = answer_text()
        chunks = [full[i:i + 7] for i in range(0, len(full), 7)]  # ~1,700 chunks, split anywhere
        from_another_thread(job.sink.on_start)
        so_far = ""
        rendered.clear()
        for n, chunk in enumerate(chunks):
            from_another_thread(job.sink.on_chunk, chunk)
            so_far += chunk
            pump(tk_root, lambda s=so_far: popup._turns[-1].answer == s, 10, f"chunk {n}")
            assert tk_root.tk.call("after", "info") == "", "a timer runs while streaming"
            if n % 200 == 0 or n == len(chunks) - 1:
                reference.delete("1.0", "end")
                for span in real_render(so_far):
                    reference.insert("end", span.text, span.tags)
                assert shown(popup.answer) == shown(reference), f"after chunk {n}"
        assert popup.state == "streaming"
        # Each update renders the new text plus the unfinished last line it joins, never the whole answer: the
        # work per chunk is bounded by the longest line, and in all it is linear in the answer's length
        # (re-rendering the whole answer per update would pass ~1,000 times its length here).
        longest_line = max(len(line) for line in full.split("\n"))
        assert max(rendered) <= longest_line + 7 + len("```\n") + 1, max(rendered)
        assert sum(rendered) < 10 * len(full), (sum(rendered), len(full))
        result = GenerationResult(full, "length", Figures(5, len(chunks), 1.0, 2.0, 3.0))
        from_another_thread(job.sink.on_done, result, 0.0, True)
        pump(tk_root, lambda: popup.state == "done", 10, "done")
        assert shown(popup.answer) == shown(reference)
        assert tk_root.tk.call("after", "info") == ""
    finally:
        reference.destroy()
        popup.close()


@pytest.mark.desktop
def test_chunks_arriving_faster_than_tk_runs_are_coalesced_in_order(
        tk_root: tk.Tk, ui_display: XvfbDisplay) -> None:
    submitter = HeldSubmitter()
    popup = AnswerPopup(tk_root, submitter, Image.new("RGB", (64, 48)), (10, 10, 64, 48), (0, 0, 1280, 1024),
                        PopupSettings())
    try:
        assert popup.ask("q")
        (job,) = submitter.jobs
        pieces = [f"{i} " for i in range(500)]

        def engine() -> None:
            job.sink.on_start()
            for p in pieces:
                job.sink.on_chunk(p)
            job.sink.on_done(GenerationResult("".join(pieces), "stop", Figures(1, 500, 1, 2, 3)), 0.0, False)

        from_another_thread(engine)  # all of it before Tk runs once
        pump(tk_root, lambda: popup.state == "done", 10, "done")
        assert popup._turns[-1].answer == "".join(pieces)
        assert popup.answer_text().endswith("".join(pieces))
    finally:
        popup.close()
