"""The popup while an answer streams: events come through the inbox (no timer at all), and rendering is
incremental (only the end of the answer is rewritten) yet shows exactly what showing the whole answer shows."""

from __future__ import annotations

import threading
import tkinter as tk
from typing import Any

import pytest
from PIL import Image
from uitools import pump
from xvfb import XvfbDisplay

from qwen_tray.engine.base import Figures, GenerationOptions, GenerationResult
from qwen_tray.jobs import Job
from qwen_tray.ui.answer_view import AnswerView
from qwen_tray.ui.popup import AnswerPopup, PopupSettings


class HeldSubmitter:
    """Accepts the popup's job and lets the test play the engine: chunks from another thread, as genai does."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> int:
        self.jobs.append(job)
        return 0

    def cancel(self, job: Job) -> None:
        job.cancel.set()


def asked_popup(root: tk.Tk) -> tuple[AnswerPopup, Job]:
    """A popup that has asked "q" of a HeldSubmitter: the test plays the engine with the returned job."""
    submitter = HeldSubmitter()
    popup = AnswerPopup(root, submitter, Image.new("RGB", (64, 48)), (10, 10, 64, 48), (0, 0, 1280, 1024),
                        PopupSettings())
    assert popup.ask("q")
    (job,) = submitter.jobs
    return popup, job


def from_another_thread(fn: Any, *args: Any) -> None:
    t = threading.Thread(target=fn, args=args)
    t.start()
    t.join()


def pending(root: tk.Tk) -> list[str]:
    """Tk's pending `after` callbacks; a timer among them fails the test (idle work is how the popup draws)."""
    kinds = [str(root.tk.splitlist(root.tk.call("after", "info", i))[1]) for i in root.tk.splitlist(
        root.tk.call("after", "info"))]
    assert "timer" not in kinds, "a timer runs while streaming"
    return kinds


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


def shown(widget: tk.Text) -> tuple[str, dict[str, list[str]], list[str]]:
    """The text, every tag's ranges, and where the embedded windows (Copy buttons) are."""
    tags = {tag: [str(i) for i in widget.tag_ranges(tag)] for tag in widget.tag_names()
            if tag != "sel" and widget.tag_ranges(tag)}
    return widget.get("1.0", "end-1c"), tags, sorted(widget.index(n) for n in widget.window_names())


@pytest.mark.desktop
def test_streaming_renders_incrementally_through_the_inbox_without_timers(
        tk_root: tk.Tk, ui_display: XvfbDisplay) -> None:
    submitter = HeldSubmitter()
    settings = PopupSettings(options=GenerationOptions(max_new_tokens=4000))
    popup = AnswerPopup(tk_root, submitter, Image.new("RGB", (64, 48)), (10, 10, 64, 48), (0, 0, 1280, 1024),
                        settings)
    reference = AnswerView(tk_root)
    try:
        assert popup.ask("")  # the default prompt: no question line above the answer
        (job,) = submitter.jobs
        full = answer_text() + "Noise \x10\x12\x18 and \x1b[31m.\n"
        chunks = [full[i:i + 7] for i in range(0, len(full), 7)]  # ~1,700 chunks, split anywhere
        from_another_thread(job.sink.on_start)
        so_far = ""
        deleted: list[str] = []
        real_delete = popup.answer.delete
        popup.answer.delete = lambda a, b=None: (deleted.append(popup.answer.get(a, b)), real_delete(a, b))
        for n, chunk in enumerate(chunks):
            from_another_thread(job.sink.on_chunk, chunk)
            so_far += chunk
            pump(tk_root, lambda s=so_far: popup._turns[-1].answer == s and not pending(tk_root), 10, f"chunk {n}")
            if n % 200 == 0 or n == len(chunks) - 1:
                reference.show(so_far, streaming=True)
                assert shown(popup.answer) == shown(reference.widget), f"after chunk {n}"
        assert popup.state == "streaming"
        # Each update rewrites only the end of the answer (a line end, a code line), never what came before.
        assert max(len(d) for d in deleted) < 40 and sum(len(d) for d in deleted) < len(full)
        result = GenerationResult(full, "length", Figures(5, len(chunks), 1.0, 2.0, 3.0))
        from_another_thread(job.sink.on_done, result, 0.0, True)
        pump(tk_root, lambda: popup.state == "done", 10, "done")
        reference.show(full)
        assert shown(popup.answer) == shown(reference.widget)
        assert tk_root.tk.call("after", "info") == ""
        # The model's control characters are written out on screen; Copy copies the answer without them.
        assert "Noise \\x10\\x12\\x18 and \\x1b[31m." in popup.answer_text()
        assert not [c for c in popup.answer_text() if ord(c) < 0x20 and c not in "\n\t"]
        assert popup.copy_answer() == full.replace("\x10", "").replace("\x12", "").replace("\x18", "").replace(
            "\x1b", "")
    finally:
        reference.widget.destroy()
        popup.close()


@pytest.mark.desktop
def test_chunks_arriving_faster_than_tk_runs_are_coalesced_in_order(
        tk_root: tk.Tk, ui_display: XvfbDisplay) -> None:
    popup, job = asked_popup(tk_root)
    try:
        pieces = [f"{i} " for i in range(500)]

        def engine() -> None:
            job.sink.on_start()
            for p in pieces:
                job.sink.on_chunk(p)
            job.sink.on_done(GenerationResult("".join(pieces), "stop", Figures(1, 500, 1, 2, 3)), 0.0, False)

        from_another_thread(engine)  # all of it before Tk runs once
        pump(tk_root, lambda: popup.state == "done", 10, "done")
        assert popup._turns[-1].answer == "".join(pieces)
        assert popup.answer_text() == "\u203a q\n" + "".join(pieces).rstrip() + "\n"  # Markdown drops the last space
    finally:
        popup.close()


@pytest.mark.desktop
def test_chunks_handled_back_to_back_are_drawn_once_when_tk_is_idle(
        tk_root: tk.Tk, ui_display: XvfbDisplay) -> None:
    """Tk redraws windows only when its queue is empty: a stream whose every chunk re-rendered the answer kept
    it full, and the demo model's answer appeared only at its end. Chunks only append; one render follows."""
    popup, job = asked_popup(tk_root)
    try:
        from_another_thread(job.sink.on_start)
        pump(tk_root, lambda: popup.state == "thinking" and not pending(tk_root), 10, "the start")
        renders: list[int] = []
        real = popup.view.show_conversation
        popup.view.show_conversation = lambda *a, **k: (renders.append(1), real(*a, **k))  # type: ignore[method-assign]
        for i in range(100):  # flush events handled one after another, the queue never empty in between
            popup._on_event(job.seq, "chunk", f"{i} ")
        assert renders == [] and popup.state == "streaming"
        pump(tk_root, lambda: not pending(tk_root), 10, "Tk to be idle")
        assert renders == [1]
        assert popup.answer_text().startswith("\u203a q\n0 1 2 ") and "98 99" in popup.answer_text()
    finally:
        popup.close()
    assert pending(tk_root) == []  # closing dropped nothing that would run later
