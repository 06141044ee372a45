"""The answer popup: a question about a captured image, the answer streamed in with light Markdown.

Threading: every method here runs on the Tk thread. The engine calls the job's
sink on threads of its own; the sink posts to the Tk thread through the app's
`TkInbox` (a queue plus one wake-up, no timer), coalescing chunks: while one
hand-over is pending, new chunks join it, so the Tk thread does one update per
wake-up however fast tokens come. Rendering is incremental: complete lines of
the live answer are rendered once, and only the unfinished last line is redrawn,
so the work per update is bounded by that line, not by the whole answer.
No timer runs, streaming or not.

Privacy: the question, the answer and the image stay in memory. The log gets
metadata only (sizes, counts, finish reason), at DEBUG, which is also how the
desktop tests observe what happened without reading screen content from disk.
"""

from __future__ import annotations

import logging
import threading
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image, ImageTk

from ..engine.base import GenerationOptions, GenerationResult, Message
from ..jobs import Busy, Job
from ..logs import RepeatedFailure
from ..safetext import clean
from .answer_view import LIGHT, AnswerView
from .geometry import Rect, place_popup
from .history import History
from .scaling import scale_popup

log = logging.getLogger(__name__)

TITLE = "qwen-tray"
THUMB_SIZE = (168, 104)
WIDTH_CHARS = 64


class Submitter(Protocol):
    """What the popup needs from the daemon: the scheduler's submit/cancel (or a wrapper around them)."""

    def submit(self, job: Job) -> int: ...

    def cancel(self, job: Job) -> None: ...


Post = Callable[..., None]  # TkInbox.post: run fn(*args) on the Tk thread, from any thread


class InboxSink:
    """A JobSink that hands its job's events to the Tk thread through `post` (the app's TkInbox), tagged with
    the job's seq. Chunks are coalesced: the first chunk after a hand-over posts one flush, later ones join the
    pending text, so a fast stream costs one Tk update per wake-up. Events keep their order: a flush is always
    posted before a terminal event that follows its chunks."""

    def __init__(self, post: Post, deliver: Callable[[int, str, object], None], seq: int) -> None:
        self._post = post
        self._deliver = deliver
        self._seq = seq
        self._lock = threading.Lock()
        self._pending: list[str] = []

    def on_start(self) -> None:
        self._post(self._deliver, self._seq, "start", None)

    def on_chunk(self, text: str) -> None:
        with self._lock:
            self._pending.append(text)
            first = len(self._pending) == 1
        if first:
            self._post(self._flush)

    def _flush(self) -> None:  # Tk thread
        with self._lock:
            text = "".join(self._pending)
            self._pending.clear()
        if text:
            self._deliver(self._seq, "chunk", text)

    def on_done(self, result: GenerationResult, queue_ms: float, demo: bool) -> None:
        self._post(self._deliver, self._seq, "done", (result, demo))

    def on_error(self, code: str, message: str, partial_text: str) -> None:
        self._post(self._deliver, self._seq, "error", (code, message, partial_text))


@dataclass
class _Turn:
    question: str
    answer: str = ""
    message: Message | None = None  # the user message sent for this turn


@dataclass
class PopupSettings:
    """The parts of the config the popup uses."""

    default_prompt: str = "Describe what is on the screen."
    presets: list[str] = field(default_factory=list)
    options: GenerationOptions = field(default_factory=GenerationOptions)
    history: History | None = None  # only when the user turned on `ui.history`


class AnswerPopup:
    """One conversation about one image, in a topmost window near the captured area."""

    def __init__(
        self,
        root: tk.Tk,
        submitter: Submitter,
        image: Image.Image,
        target: Rect,
        monitor: Rect,
        settings: PopupSettings,
        on_closed: Callable[[AnswerPopup], None] | None = None,
        post: Post | None = None,
    ) -> None:
        """`post` is the app's `TkInbox.post`; without one (a popup on its own, in tests) the popup opens an
        inbox of its own on `root`, closed with the popup."""
        self.root = root
        self._submitter = submitter
        self.image = image
        self._settings = settings
        self._on_closed = on_closed
        self._history: list[Message] = []  # completed turns sent back with each follow-up
        self._turns: list[_Turn] = []
        self._live: Job | None = None
        self._live_turn: _Turn | None = None
        self._own_inbox = None
        if post is None:
            from .inbox import TkInbox

            self._own_inbox = TkInbox(root)
            post = self._own_inbox.post
        self._post = post
        self._failures: RepeatedFailure | None = None  # the live request's event-handling failures
        self.state = "ready"
        self.closed = False

        self.win = tk.Toplevel(root)
        self.win.withdraw()
        self.win.title(f"{TITLE} - ready")
        self.win.wm_attributes("-topmost", True)
        self.win.protocol("WM_DELETE_WINDOW", self.close)
        self._build()
        scale_popup(self.win, monitor)  # Tk ignores per-monitor DPI: size the popup for its monitor
        self._place(target, monitor)
        self.win.deiconify()
        self.win.lift()
        self.win.after_idle(self._focus_question)
        self._set_state("ready", "Ask about this image \u2014 Enter sends, Shift+Enter new line, Esc closes")

    # -- layout ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        w = self.win
        w.configure(padx=8, pady=8)
        top = tk.Frame(w)
        top.pack(fill="x")
        thumb = self.image.copy()
        thumb.thumbnail(THUMB_SIZE, Image.Resampling.BILINEAR)
        self._thumb = ImageTk.PhotoImage(thumb, master=w)
        tk.Label(top, image=self._thumb, relief="solid", borderwidth=1).pack(side="left", anchor="n")
        side = tk.Frame(top)
        side.pack(side="left", fill="both", expand=True, padx=(8, 0))
        self.status = tk.Label(side, anchor="w", justify="left", wraplength=300)
        self.status.pack(fill="x")
        buttons = tk.Frame(side)
        buttons.pack(fill="x", pady=(6, 0))
        self.stop_button = tk.Button(buttons, text="Stop", command=self.stop, state="disabled")
        self.stop_button.pack(side="left")
        self.copy_button = tk.Button(buttons, text="Copy", command=self.copy_answer)
        self.copy_button.pack(side="left", padx=(4, 0))
        self.clear_button = tk.Button(buttons, text="Clear", command=self.clear)
        self.clear_button.pack(side="left", padx=(4, 0))
        presets = tk.Frame(side)
        presets.pack(fill="x", pady=(6, 0))
        self.preset_buttons: list[tk.Button] = []
        for text in self._settings.presets:
            b = tk.Button(presets, text=text, command=lambda t=text: self.ask(t), padx=4, pady=0)
            b.pack(side="left", padx=(0, 4))
            self.preset_buttons.append(b)

        body = tk.Frame(w)
        body.pack(fill="both", expand=True, pady=(8, 0))
        self.view = AnswerView(body, LIGHT, on_copy=self._to_clipboard, width=WIDTH_CHARS, height=14)
        self.answer = self.view.widget
        scroll = tk.Scrollbar(body, command=self.answer.yview)
        self.answer.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.answer.pack(side="left", fill="both", expand=True)

        self.question = tk.Text(w, width=WIDTH_CHARS, height=3, wrap="word", undo=True, padx=6, pady=4)
        self.question.pack(fill="x", pady=(8, 0))

        for widget in (self.question, self.answer):
            widget.bind("<Return>", self._on_return)
            widget.bind("<KP_Enter>", self._on_return)
            widget.bind("<Shift-Return>", self._on_shift_return)
            widget.bind("<Control-c>", self._on_ctrl_c)
            widget.bind("<Control-C>", self._on_ctrl_c)
        w.bind("<Escape>", lambda e: self.close())

    def _place(self, target: Rect, monitor: Rect) -> None:
        self.win.update_idletasks()
        size = (self.win.winfo_reqwidth(), self.win.winfo_reqheight())
        x, y = place_popup(size, target, monitor)
        self.win.geometry(f"+{x}+{y}")

    def _focus_question(self) -> None:
        if self.closed:
            return
        self.win.focus_force()
        self.question.focus_set()

    # -- keys ----------------------------------------------------------------------------------------------
    def _on_return(self, event: tk.Event) -> str:
        if event.widget is self.question or event.widget is self.answer:
            self.ask(self.question.get("1.0", "end-1c"))
        return "break"

    def _on_shift_return(self, event: tk.Event) -> str:
        self.question.insert("insert", "\n")
        self.question.see("insert")
        return "break"

    def _on_ctrl_c(self, event: tk.Event) -> str | None:
        """A selection in the focused box: copy it (Tk's own binding). Else a selection in the answer: copy
        that. Else the whole latest answer."""
        if event.widget.tag_ranges("sel"):
            return None
        if self.answer.tag_ranges("sel"):
            self._to_clipboard(self.answer.get("sel.first", "sel.last"))
            return "break"
        self.copy_answer()
        return "break"

    # -- actions (Tk thread) ---------------------------------------------------------------------------
    def ask(self, question: str) -> bool:
        """Send a question (empty = the default prompt); follow-ups carry the conversation so far."""
        if self.closed:
            return False
        if self._live is not None:
            self.win.bell()
            return False
        question = question.strip() or self._settings.default_prompt
        first = not self._history
        message = Message("user", question, [self.image] if first else [])
        turn = _Turn(question, message=message)
        job = Job(messages=[*self._history, message], options=self._settings.options,
                  sink=None, priority="interactive", label="popup")  # type: ignore[arg-type]
        job.sink = InboxSink(self._post, self._on_event, job.seq)
        log.debug("popup: request %d, %d message(s), image %dx%d", job.seq, len(job.messages),
                  self.image.width, self.image.height)
        try:
            position = self._submitter.submit(job)
        except Busy:
            self._set_state("error", "Busy: too many requests are waiting. Try again in a moment.")
            return False
        except Exception as exc:  # the daemon is stopping, or the request was refused
            log.warning("popup: request refused: %s", exc)
            self._set_state("error", f"Could not ask: {exc}")
            return False
        self._live, self._live_turn = job, turn
        self._turns.append(turn)
        self.question.delete("1.0", "end")
        self.stop_button.configure(state="normal")
        self._render()
        ahead = f" ({position} ahead)" if position else ""
        self._set_state("queued", f"Queued{ahead}\u2026")
        self._failures = RepeatedFailure(log, f"popup: request {job.seq}: showing an event")
        return True

    def stop(self) -> None:
        """Cancel the live answer; its partial text stays and the terminal event still arrives."""
        if self._live is not None:
            self._submitter.cancel(self._live)
            self._set_state("stopping", "Stopping\u2026")

    def copy_answer(self) -> str:
        """Put the latest answer (its Markdown source, minus control characters) on the clipboard; returns it."""
        text = clean(next((t.answer for t in reversed(self._turns) if t.answer), ""))
        if not text:
            self.win.bell()
            return ""
        self._to_clipboard(text)
        return text

    def _to_clipboard(self, text: str) -> None:
        # The root (alive as long as the app) owns the X selection, so the text outlives this popup.
        self.root.clipboard_clear()
        self.root.clipboard_append(text)
        log.debug("popup: copied %d characters", len(text))
        self._flash(f"Copied {len(text)} characters.")

    def clear(self) -> None:
        """Forget the conversation (the image stays): the next question starts afresh."""
        if self._live is not None:
            self._submitter.cancel(self._live)
            self._live, self._live_turn = None, None
        self._history.clear()
        self._turns.clear()
        self.stop_button.configure(state="disabled")
        self._render()
        self._set_state("ready", "Conversation cleared. Ask a new question.")
        self.question.focus_set()

    def close(self) -> None:
        """Esc / window close: cancel what is running and drop everything (nothing is kept)."""
        if self.closed:
            return
        self.closed = True
        if self._live is not None:
            self._submitter.cancel(self._live)
            self._live = None
        self.win.destroy()
        if self._own_inbox is not None:
            self._own_inbox.close()
        self._thumb = None  # freed here, on the Tk thread
        self._history.clear()
        self._turns.clear()
        log.debug("popup: closed")
        if self._on_closed is not None:
            self._on_closed(self)

    # -- streaming (Tk thread; reached through the inbox, no timer) ---------------------------------------
    def _on_event(self, seq: int, kind: str, payload: object) -> None:
        """One event of a job (stale events of cancelled/cleared jobs are dropped). A failure here would repeat
        for every chunk: it is logged once per request, with a count at its end."""
        if self.closed or self._live is None or seq != self._live.seq or self._live_turn is None:
            return
        failures = self._failures
        try:
            self._apply(self._live_turn, kind, payload)
        except Exception as exc:  # noqa: BLE001
            if failures is not None:
                failures.failed(exc)
            if kind in ("done", "error") and self._live is not None:
                self._end_live()
        if kind in ("done", "error") and failures is not None:
            failures.summary()

    def _apply(self, turn: _Turn, kind: str, payload: object) -> None:
        if kind == "start":
            if self.state != "stopping":
                self._set_state("thinking", "Thinking\u2026")
        elif kind == "chunk":
            self._append_live(str(payload))
            if self.state in ("queued", "thinking"):
                self._set_state("streaming", "Answering\u2026")
        elif kind == "done":
            result, demo = payload  # type: ignore[misc]
            self._finish_done(turn, result, demo)
        elif kind == "error":
            code, message, partial = payload  # type: ignore[misc]
            self._finish_error(turn, code, message, partial)

    def _finish_done(self, turn: _Turn, result: GenerationResult, demo: bool) -> None:
        turn.answer = result.text
        f = result.figures
        if result.finish_reason == "cancelled":
            state, text = "stopped", f"Stopped after {f.completion_tokens} tokens."
        else:
            more = " (reached the length limit)" if result.finish_reason == "length" else ""
            state = "done"
            text = f"Done \u00b7 {f.completion_tokens} tokens \u00b7 {f.tokens_per_s:.1f} tokens/s{more}"
        if result.trimmed is not None:  # the prompt budget left older turns out (qwen_tray.budget)
            text += f" \u00b7 {result.trimmed.summary()}"
        if demo:
            text += " \u00b7 demo model: it only names the main colour"
        if turn.answer and turn.message is not None:
            self._history += [turn.message, Message("assistant", turn.answer)]
            if self._settings.history is not None:
                try:
                    self._settings.history.record(turn.question, turn.answer, result.finish_reason, self.image.size)
                except OSError as exc:
                    log.warning("could not write the history file: %s", exc)
        else:
            self._turns.remove(turn)  # nothing was said: forget the question too
        log.debug("popup: request %d %s, %d characters, %d tokens", self._live.seq if self._live else 0,
                  result.finish_reason, len(turn.answer), f.completion_tokens)
        self._end_live()
        self._render()
        self._set_state(state, text)

    def _finish_error(self, turn: _Turn, code: str, message: str, partial: str) -> None:
        turn.answer = partial
        if not partial:
            self._turns.remove(turn)
        log.debug("popup: request %d failed: %s", self._live.seq if self._live else 0, code)
        self._end_live()
        self._render()
        self._set_state("error", f"Error: {message}")

    def _end_live(self) -> None:
        self._live, self._live_turn = None, None
        self.stop_button.configure(state="disabled")
        self.question.focus_set()

    # -- drawing ---------------------------------------------------------------------------------------
    def _render(self) -> None:
        """Show the transcript; the view redraws only what changed (per chunk: the end of the live answer)."""
        turns = [(turn.question if len(self._turns) > 1 or turn.question != self._settings.default_prompt
                  else None, turn.answer) for turn in self._turns]
        self.view.show_conversation(turns, streaming=self._live_turn is not None)
        self.answer.see("end")

    def _append_live(self, text: str) -> None:
        """Add streamed text to the live answer and show it."""
        if self._live_turn is not None:
            self._live_turn.answer += text
            self._render()

    def answer_text(self) -> str:
        """The transcript as shown (for tests and accessibility tools)."""
        return self.answer.get("1.0", "end-1c")

    def _set_state(self, state: str, text: str) -> None:
        self.state = state
        self.status.configure(text=text, foreground="#b00020" if state == "error" else "#202020")
        if not self.closed:
            self.win.title(f"{TITLE} - {state}")  # ASCII: X tools read WM_NAME as Latin-1

    def _flash(self, text: str) -> None:
        self.status.configure(text=text)
