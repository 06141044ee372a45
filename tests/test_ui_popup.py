"""The answer popup on a real X server (Xvfb), with real key events (xdotool) and the real scheduler + tiny model."""

from __future__ import annotations

import json
import threading
import tkinter as tk
from pathlib import Path

from PIL import Image, ImageDraw
from uitools import Recorder, pump, run_while_pumping, settle
from xvfb import XvfbDisplay

from qwen_tray.engine.base import GenerationOptions
from qwen_tray.ui import markdown
from qwen_tray.ui.popup import AnswerPopup, PopupSettings

PRESETS = ["Describe", "Extract text", "Explain this error", "Translate to English"]


def picture() -> Image.Image:
    img = Image.new("RGB", (640, 400), "white")
    d = ImageDraw.Draw(img)
    d.rectangle((20, 20, 300, 200), fill="navy")
    d.text((40, 250), "Error: file not found", fill="black")
    return img


def open_popup(root: tk.Tk, rec: Recorder, max_new_tokens: int = 40, min_new_tokens: int | None = None,
               **kw: object) -> AnswerPopup:
    """Answers run to `max_new_tokens` unless told otherwise: the random model may end one at any token, and
    where it does depends on the CPU's numerics and on what the engine batched or cached before."""
    forced = max_new_tokens if min_new_tokens is None else min_new_tokens
    settings = PopupSettings(default_prompt="Describe what is on the screen.", presets=PRESETS,
                             options=GenerationOptions(max_new_tokens=max_new_tokens, min_new_tokens=forced))
    popup = AnswerPopup(root, rec, picture(), (200, 150, 640, 400), (0, 0, 1920, 1080), settings, **kw)
    pump(root, lambda: popup.win.focus_get() is popup.question, 10, "the question box to have focus")
    return popup


def type_keys(root: tk.Tk, d: XvfbDisplay, *args: str) -> None:
    run_while_pumping(root, ["xdotool", *args], d.env())


def test_question_streams_answer_with_state_and_title(tk_root: tk.Tk, recorder: Recorder,
                                                      ui_display: XvfbDisplay) -> None:
    popup = open_popup(tk_root, recorder)
    assert popup.win.title() == "qwen-tray - Ask about the screen"
    states: list[str] = []
    type_keys(tk_root, ui_display, "type", "--delay", "5", "What is this?")
    type_keys(tk_root, ui_display, "key", "Return")
    pump(tk_root, lambda: (states.append(popup.state) or popup.state) in ("done", "error"), 60, "the answer")
    assert popup.state == "done", popup.status_text
    assert {"queued", "thinking", "streaming"} & set(states)
    assert popup.win.title() == "qwen-tray - Answered"
    assert popup.status_text.startswith("Done \u00b7 ") and "tokens/s" in popup.status_text
    assert popup.note_text.startswith("Demo model: ")  # its own line, under the status
    # What the engine was asked: the typed question with the full-size image, at interactive priority.
    (job,) = recorder.jobs
    assert job.priority == "interactive"
    assert [(m.role, m.text) for m in job.messages] == [("user", "What is this?")]
    assert job.messages[0].images[0].size == (640, 400)
    # The answer is shown (rendered from Markdown) after the question, and the box is empty again.
    answer = popup._turns[-1].answer
    assert answer
    shown = popup.answer_text()
    assert shown.startswith("\u203a What is this?\n")
    assert shown.endswith(markdown.plain_text(markdown.render(answer)))
    assert popup.question.get("1.0", "end-1c") == ""
    # Idle: no Tk timer is left running (the drain loop stops with the stream).
    assert tk_root.tk.call("after", "info") == ""


def test_empty_question_uses_default_prompt_and_shift_enter_is_a_newline(
        tk_root: tk.Tk, recorder: Recorder, ui_display: XvfbDisplay) -> None:
    popup = open_popup(tk_root, recorder)
    type_keys(tk_root, ui_display, "type", "line one")
    type_keys(tk_root, ui_display, "key", "shift+Return")
    type_keys(tk_root, ui_display, "type", "line two")
    assert popup.question.get("1.0", "end-1c") == "line one\nline two"
    assert recorder.jobs == []  # Shift+Enter did not send
    popup.question.delete("1.0", "end")
    type_keys(tk_root, ui_display, "key", "Return")
    pump(tk_root, lambda: popup.state == "done", 60, "the answer")
    assert recorder.jobs[0].messages[0].text == "Describe what is on the screen."


def test_preset_button_sends_its_prompt(tk_root: tk.Tk, recorder: Recorder, ui_display: XvfbDisplay) -> None:
    popup = open_popup(tk_root, recorder)
    buttons = popup.preset_buttons
    assert [b.cget("text") for b in buttons] == PRESETS
    target = buttons[1]
    settle(tk_root)
    x = target.winfo_rootx() + target.winfo_width() // 2
    y = target.winfo_rooty() + target.winfo_height() // 2
    type_keys(tk_root, ui_display, "mousemove", str(x), str(y), "click", "1")
    pump(tk_root, lambda: popup.state == "done", 60, "the answer")
    assert recorder.jobs[0].messages[0].text == "Extract text"


def test_follow_up_keeps_the_conversation_and_the_image(tk_root: tk.Tk, recorder: Recorder,
                                                       ui_display: XvfbDisplay) -> None:
    popup = open_popup(tk_root, recorder)
    popup.ask("first question")
    pump(tk_root, lambda: popup.state == "done", 60, "the first answer")
    first_answer = popup._turns[-1].answer
    type_keys(tk_root, ui_display, "type", "and then?")
    type_keys(tk_root, ui_display, "key", "Return")
    pump(tk_root, lambda: popup.state == "done" and len(recorder.jobs) == 2, 60, "the second answer")
    msgs = recorder.jobs[1].messages
    assert [(m.role, m.text) for m in msgs] == [("user", "first question"), ("assistant", first_answer),
                                               ("user", "and then?")]
    assert msgs[0].images[0].size == (640, 400) and msgs[1].images == [] and msgs[2].images == []
    assert "\u203a first question" in popup.answer_text() and "\u203a and then?" in popup.answer_text()
    # Clear: the next question starts a new conversation with the same image.
    popup.clear()
    assert popup.answer_text() == ""
    popup.ask("fresh")
    pump(tk_root, lambda: popup.state == "done" and len(recorder.jobs) == 3, 60, "the third answer")
    assert [(m.role, m.text) for m in recorder.jobs[2].messages] == [("user", "fresh")]
    assert recorder.jobs[2].messages[0].images[0].size == (640, 400)


def test_stop_button_stops_the_stream(tk_root: tk.Tk, recorder: Recorder, ui_display: XvfbDisplay) -> None:
    popup = open_popup(tk_root, recorder, max_new_tokens=3000)
    popup.ask("go on and on")
    pump(tk_root, lambda: popup.state == "streaming", 60, "the stream to start")
    b = popup.stop_button
    assert str(b.cget("state")) == "normal"
    tk_root.update_idletasks()  # the stream keeps Tk's queue full, so the geometry may still be pending
    x, y = b.winfo_rootx() + b.winfo_width() // 2, b.winfo_rooty() + b.winfo_height() // 2
    type_keys(tk_root, ui_display, "mousemove", str(x), str(y), "click", "1")
    pump(tk_root, lambda: popup.state in ("stopped", "done"), 60, "the stop")
    assert popup.state == "stopped"
    assert recorder.cancelled == recorder.jobs
    tokens = int(popup.status_text.split()[2])
    assert 0 < tokens < 3000
    assert str(b.cget("state")) == "disabled"
    # The partial answer stays and counts as a turn of the conversation.
    assert popup._turns[-1].answer and popup._history[-1].role == "assistant"


def test_ctrl_c_copies_the_answer_to_the_x_clipboard(tk_root: tk.Tk, recorder: Recorder,
                                                     ui_display: XvfbDisplay) -> None:
    popup = open_popup(tk_root, recorder)
    popup.ask("anything")
    pump(tk_root, lambda: popup.state == "done", 60, "the answer")
    answer = popup._turns[-1].answer
    type_keys(tk_root, ui_display, "key", "ctrl+c")
    got = run_while_pumping(tk_root, ["xclip", "-o", "-selection", "clipboard"], ui_display.env())
    assert got == answer
    # The clipboard outlives the popup (the app's root window serves it).
    popup.close()
    got = run_while_pumping(tk_root, ["xclip", "-o", "-selection", "clipboard"], ui_display.env())
    assert got == answer


def test_ctrl_c_with_a_selection_copies_the_selection(tk_root: tk.Tk, recorder: Recorder,
                                                      ui_display: XvfbDisplay) -> None:
    popup = open_popup(tk_root, recorder)
    type_keys(tk_root, ui_display, "type", "hello world")
    popup.question.tag_add("sel", "1.0", "1.5")
    type_keys(tk_root, ui_display, "key", "ctrl+c")
    assert run_while_pumping(tk_root, ["xclip", "-o", "-selection", "clipboard"], ui_display.env()) == "hello"
    # A selection in the answer (focus still in the question box) is what Ctrl+C copies.
    popup.question.tag_remove("sel", "1.0", "end")
    popup.ask("")
    pump(tk_root, lambda: popup.state == "done", 60, "the answer")
    popup.answer.tag_add("sel", "1.0", "1.3")
    expected = popup.answer.get("1.0", "1.3")
    type_keys(tk_root, ui_display, "key", "ctrl+c")
    assert run_while_pumping(tk_root, ["xclip", "-o", "-selection", "clipboard"], ui_display.env()) == expected


def test_escape_closes_and_cancels(tk_root: tk.Tk, recorder: Recorder, ui_display: XvfbDisplay) -> None:
    closed: list[AnswerPopup] = []
    popup = open_popup(tk_root, recorder, max_new_tokens=3000, on_closed=closed.append)
    popup.ask("long answer please")
    pump(tk_root, lambda: popup.state == "streaming", 60, "the stream to start")
    type_keys(tk_root, ui_display, "key", "Escape")
    pump(tk_root, lambda: popup.closed, 10, "the popup to close")
    assert closed == [popup]
    assert tk_root.tk.call("winfo", "exists", str(popup.win)) == 0  # destroyed
    assert recorder.cancelled and recorder.cancelled[0].cancel.is_set()
    # The scheduler finishes the cancelled job and is free for the next one.
    pump(tk_root, lambda: recorder.scheduler.status()["state"] == "ready", 30, "the worker to be free")
    assert tk_root.tk.call("after", "info") == ""
    assert ui_display.run("xdotool", "search", "--onlyvisible", "--name", "^qwen-tray", check=False) == ""


def test_busy_or_stopping_scheduler_shows_an_error(tk_root: tk.Tk, recorder: Recorder) -> None:
    popup = open_popup(tk_root, recorder)
    recorder.scheduler.stop()
    assert popup.ask("hello?") is False
    assert popup.state == "error"
    assert "Busy" in popup.status_text
    assert popup.win.title() == "qwen-tray - Error"


def test_history_is_off_by_default_and_opt_in_writes_private_json_lines(tk_root: tk.Tk, recorder: Recorder,
                                                                        tmp_path: Path) -> None:
    from qwen_tray.config import Config
    from qwen_tray.ui.desktop import popup_settings

    path = tmp_path / "data" / "history.jsonl"
    off = popup_settings(Config(), path)
    assert off.history is None
    cfg = Config()
    cfg.ui.history = True
    on = popup_settings(cfg, path)
    on.options = GenerationOptions(max_new_tokens=20)
    popup = AnswerPopup(tk_root, recorder, picture(), (0, 0, 10, 10), (0, 0, 1920, 1080), on)
    popup.ask("what is this?")
    pump(tk_root, lambda: popup.state == "done", 60, "the answer")
    (line,) = path.read_text(encoding="utf-8").splitlines()
    entry = json.loads(line)
    assert entry["question"] == "what is this?" and entry["answer"] == popup._turns[-1].answer
    assert entry["image"] == {"width": 640, "height": 400} and entry["finish_reason"] in ("stop", "length")
    assert path.stat().st_mode & 0o777 == 0o600
    popup.close()


def test_queued_state_while_another_request_runs(tk_root: tk.Tk, recorder: Recorder) -> None:
    """A popup question waits behind the running request (the queue is visible), then streams."""
    from qwen_tray.jobs import Job

    class Sink:
        def __init__(self) -> None:
            self.started = threading.Event()
            self.done = threading.Event()

        def on_start(self) -> None:
            self.started.set()

        def on_chunk(self, text: str) -> None:
            pass

        def on_done(self, result: object, queue_ms: float, demo: bool) -> None:
            self.done.set()

        def on_error(self, code: str, message: str, partial_text: str) -> None:
            self.done.set()

    from qwen_tray.engine.base import Message

    sink = Sink()
    background = Job([Message("user", "long")], GenerationOptions(max_new_tokens=3000), sink, "background", "ipc")
    recorder.scheduler.submit(background)
    assert sink.started.wait(30)
    popup = open_popup(tk_root, recorder)
    popup.ask("my turn")
    assert popup.state == "queued" and popup.win.title() == "qwen-tray - Waiting"
    recorder.scheduler.cancel(background)
    pump(tk_root, lambda: popup.state == "done", 60, "the popup's answer")
    assert sink.done.is_set()


def test_a_failed_request_shows_its_error_and_the_popup_stays_usable(tk_root: tk.Tk) -> None:
    """The scheduler ends a request past its time limit with `timeout`: the popup says so, keeps the partial
    text out of the conversation, and the next question works."""
    from uitools import make_scheduler

    scheduler = make_scheduler(request_timeout_s=0.3)
    try:
        rec = Recorder(scheduler)
        popup = open_popup(tk_root, rec, max_new_tokens=100000)
        popup.ask("never stop")
        pump(tk_root, lambda: popup.state in ("error", "done"), 60, "the failure")
        assert popup.state == "error", popup.status_text
        assert popup.status_text.startswith("Error: the request ran longer than the limit")
        assert popup.win.title() == "qwen-tray - Error"
        assert str(popup.stop_button.cget("state")) == "disabled"
        popup._settings.options = GenerationOptions(max_new_tokens=5)
        popup.ask("short question")
        pump(tk_root, lambda: popup.state == "done", 60, "the next answer")
        assert [(m.role, m.text) for m in rec.jobs[-1].messages] == [("user", "short question")]
    finally:
        scheduler.stop()
