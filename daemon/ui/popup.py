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
import tkinter.font
from collections.abc import Callable
from dataclasses import dataclass, field
from tkinter import ttk
from typing import Protocol

from PIL import Image, ImageTk

from ..engine.base import GenerationOptions, GenerationResult, Message
from ..jobs import Busy, Job
from ..logs import RepeatedFailure
from ..safetext import clean
from . import theme
from .answer_view import QUESTION, AnswerView
from .geometry import Rect, place_popup
from .history import History
from .scaling import scale_popup
from .tooltip import Tooltip

log = logging.getLogger(__name__)

TITLE = "qwen-tray"
# The window title per state, for people (taskbar, Alt+Tab) and for the desktop tests. ASCII: X tools read
# WM_NAME as Latin-1.
TITLES = {
    "ready": "Ask about the screen", "queued": "Waiting", "thinking": "Thinking", "streaming": "Answering",
    "stopping": "Stopping", "done": "Answered", "stopped": "Stopped", "error": "Error",
}
THUMB_SIZE = (168, 104)
WIDTH_CHARS = 64
BUTTON_CHARS = 7  # Stop / Copy / Clear share one width, so no label change can move a button
DEMO_NOTE = "Demo model: it only names the main colour."
PLACEHOLDER = "Ask a question about this image…"
# Room kept for the window manager's frame when placing (side border, title bar + top border): `wm geometry`
# places the frame's outer corner and sizes the inside. Windows 11's frame is 8 px a side (mostly invisible
# resize border) and a 31 px title bar; most X11 window managers draw less. Counted, not measured: frames can
# only be measured after the window is shown, and window managers disagree about moves after that.
FRAME = (8, 32)
HINT = "Enter sends · Shift+Enter new line · Esc closes"


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
    theme: str = "auto"  # ui.theme: auto (follow the system), light or dark


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
        *,
        work: Rect | None = None,
        cursor: tuple[int, int] | None = None,
        avoid: list[Rect] | None = None,
    ) -> None:
        """`post` is the app's `TkInbox.post`; without one (a popup on its own, in tests) the popup opens an
        inbox of its own on `root`, closed with the popup. `work` (the monitor's work area, without taskbars),
        `cursor` and `avoid` (other open popups) steer where it goes: see `geometry.place_popup`."""
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
        self._redraw_pending: str | None = None  # an `after_idle` id: the live answer is drawn when Tk is idle
        if post is None:
            from .inbox import TkInbox

            self._own_inbox = TkInbox(root)
            post = self._own_inbox.post
        self._post = post
        self._failures: RepeatedFailure | None = None  # the live request's event-handling failures
        self.state = "ready"
        self.closed = False

        self.palette = theme.apply(root, settings.theme)
        self.status_text = ""  # the status line's full text (the label shows it cut to one line)
        self.note_text = ""  # the note line under it: the demo model's warning, which nothing replaces

        self.win = tk.Toplevel(root)
        self.win.withdraw()
        self.win.title(f"{TITLE} - {TITLES['ready']}")
        self.win.wm_attributes("-topmost", True)
        self.win.protocol("WM_DELETE_WINDOW", self.close)
        self._build()
        scale_popup(self.win, monitor)  # Tk ignores per-monitor DPI: size the popup for its monitor
        self._place(target, monitor, work, cursor, avoid or [])
        self.win.deiconify()
        self.win.lift()
        self.win.after_idle(self._focus_question)
        self._set_state("ready", f"Ask about this image ({image.width} \u00d7 {image.height}).")

    # -- layout ------------------------------------------------------------------------------------------
    def _build(self) -> None:
        """A fixed grid: every line of text is one line high whatever it says (long text is cut with "…"),
        and the window's size is set once, so no button moves between states."""
        p = self.palette
        w = self.win
        w.configure(background=p.bg)
        outer = ttk.Frame(w, padding=(14, 12, 14, 12))
        outer.pack(fill="both", expand=True)
        outer.columnconfigure(0, weight=1)
        outer.rowconfigure(2, weight=1)

        top = ttk.Frame(outer)
        top.grid(row=0, column=0, sticky="ew")
        top.columnconfigure(1, weight=1)
        thumb = self.image.copy()
        thumb.thumbnail(THUMB_SIZE, Image.Resampling.BILINEAR)
        self._thumb = ImageTk.PhotoImage(thumb, master=w)
        tk.Label(top, image=self._thumb, borderwidth=0, highlightthickness=1, highlightbackground=p.border,
                 background=p.bg).grid(row=0, column=0, rowspan=4, sticky="nw")
        # width=1: the labels ask for no width of their own; the column gives them its width and the text is cut
        self.status = ttk.Label(top, text=" ", width=1, font=theme.BODY_FONT, foreground=p.fg, anchor="w")
        self.status.grid(row=0, column=1, sticky="ew", padx=(12, 0))
        self.note = ttk.Label(top, text=" ", width=1, font=theme.CAPTION_FONT, foreground=p.warning, anchor="w")
        self.note.grid(row=1, column=1, sticky="ew", padx=(12, 0), pady=(2, 0))
        self._status_tip = Tooltip(self.status, p)
        self._note_tip = Tooltip(self.note, p)
        self.hint = ttk.Label(top, text=HINT, width=1, font=theme.CAPTION_FONT, foreground=p.muted, anchor="w")
        self.hint.grid(row=2, column=1, sticky="ew", padx=(12, 0), pady=(2, 0))
        for label in (self.status, self.note):
            label.bind("<Configure>", lambda e: self._fit_lines(), add="+")
        buttons = ttk.Frame(top)
        buttons.grid(row=3, column=1, sticky="sw", padx=(12, 0), pady=(8, 0))
        top.rowconfigure(3, weight=1)
        self.stop_button = ttk.Button(buttons, text="Stop", width=BUTTON_CHARS, command=self.stop, state="disabled")
        self.stop_button.pack(side="left")
        self.copy_button = ttk.Button(buttons, text="Copy", width=BUTTON_CHARS, command=self.copy_answer,
                                      state="disabled")
        self.copy_button.pack(side="left", padx=(6, 0))
        self.clear_button = ttk.Button(buttons, text="Clear", width=BUTTON_CHARS, command=self.clear)
        self.clear_button.pack(side="left", padx=(6, 0))

        presets = ttk.Frame(outer)
        presets.grid(row=1, column=0, sticky="ew", pady=(10, 0))
        self.preset_buttons: list[ttk.Button] = []
        for text in self._settings.presets:
            b = ttk.Button(presets, text=text, command=lambda t=text: self.ask(t))
            b.pack(side="left", padx=(0, 6))
            self.preset_buttons.append(b)

        body = tk.Frame(outer, background=p.surface, highlightthickness=1, highlightbackground=p.border,
                        highlightcolor=p.border)
        body.grid(row=2, column=0, sticky="nsew", pady=(10, 0))
        body_font = tkinter.font.nametofont(theme.BODY_FONT, root=body).actual()
        mono_font = tkinter.font.nametofont(theme.MONO_FONT, root=body).actual()
        self.view = AnswerView(body, p.answer_colours(), on_copy=self._to_clipboard,
                               font=(body_font["family"], body_font["size"]),
                               mono_font=(mono_font["family"], mono_font["size"]),
                               width=WIDTH_CHARS, height=14, padx=10, pady=8)
        self.answer = self.view.widget
        scroll = ttk.Scrollbar(body, command=self.answer.yview)
        self.answer.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.answer.pack(side="left", fill="both", expand=True)

        ask_row = ttk.Frame(outer)
        ask_row.grid(row=3, column=0, sticky="ew", pady=(10, 0))
        ask_row.columnconfigure(0, weight=1)
        # The input: the same type as the answer, its own box, a coloured ring while it has the focus.
        self.question = tk.Text(ask_row, width=WIDTH_CHARS, height=3, wrap="word", undo=True, padx=10, pady=6,
                                relief="flat", borderwidth=0, font=theme.BODY_FONT, background=p.surface,
                                foreground=p.fg, insertbackground=p.fg, selectbackground=p.select_bg,
                                selectforeground=p.fg, highlightthickness=2, highlightbackground=p.border,
                                highlightcolor=p.accent)
        self.question.grid(row=0, column=0, sticky="ew")
        self._placeholder = tk.Label(self.question, text=PLACEHOLDER, font=theme.BODY_FONT, foreground=p.muted,
                                     background=p.surface, borderwidth=0, padx=0, pady=0, cursor="xterm")
        self._placeholder.bind("<Button-1>", lambda e: self.question.focus_set())
        self.ask_button = ttk.Button(ask_row, text="Ask", width=BUTTON_CHARS, style="Accent.TButton",
                                     command=lambda: self.ask(self.question.get("1.0", "end-1c")))
        self.ask_button.grid(row=0, column=1, sticky="se", padx=(8, 0))
        self.question.bind("<<Modified>>", self._on_question_modified, add="+")  # typed, pasted or set
        self._show_placeholder()

        for widget in (self.question, self.answer):
            widget.bind("<Return>", self._on_return)
            widget.bind("<KP_Enter>", self._on_return)
            widget.bind("<Shift-Return>", self._on_shift_return)
            widget.bind("<Control-c>", self._on_ctrl_c)
            widget.bind("<Control-C>", self._on_ctrl_c)
        w.bind("<Escape>", lambda e: self.close())

    def _place(self, target: Rect, monitor: Rect, work: Rect | None, cursor: tuple[int, int] | None,
               avoid: list[Rect]) -> None:
        """Size the window once (it keeps that size in every state) and put it where it hides least."""
        self.win.update_idletasks()
        w, h = self.win.winfo_reqwidth(), self.win.winfo_reqheight()
        side, title = FRAME
        x, y = place_popup((w + 2 * side, h + title + side), target, monitor, work=work, cursor=cursor, avoid=avoid)
        self.win.geometry(f"{w}x{h}+{x}+{y}")
        self.win.minsize(w, h)

    def _on_question_modified(self, event: tk.Event) -> None:
        self.question.edit_modified(False)  # re-arm: the next change fires again
        self._show_placeholder()

    def _show_placeholder(self) -> None:
        if self.closed:
            return
        if self.question.get("1.0", "end-1c"):
            self._placeholder.place_forget()
        else:
            self._placeholder.place(x=10, y=6)

    def _fit_lines(self) -> None:
        """Show the status and note cut to one line each; the whole text is in their tooltips."""
        if self.closed:
            return
        for label, text, tip in ((self.status, self.status_text, self._status_tip),
                                 (self.note, self.note_text, self._note_tip)):
            font = tkinter.font.Font(root=label, font=label.cget("font"))
            shown = theme.elide(text, font, label.winfo_width()) if label.winfo_ismapped() else text
            label.configure(text=shown or " ")
            tip.text = text if shown != " ".join(text.split()) else ""

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
        self._show_placeholder()
        self.stop_button.configure(state="normal")
        self.ask_button.configure(state="disabled")  # one question at a time (Enter rings the bell meanwhile)
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
        self._cancel_redraw()
        self._history.clear()
        self._turns.clear()
        self.stop_button.configure(state="disabled")
        self.ask_button.configure(state="normal")
        self._render()
        self._update_copy()
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
        self._cancel_redraw()
        self.win.destroy()
        if self._own_inbox is not None:
            self._own_inbox.close()
        self._thumb = None  # freed here, on the Tk thread
        self._history.clear()
        self._turns.clear()
        log.debug("popup: closed")
        if self._on_closed is not None:
            self._on_closed(self)

    def has_conversation(self) -> bool:
        """Whether closing this popup would lose something: a question asked (answered or still running)."""
        return bool(self._turns) or self._live is not None

    def hide(self) -> None:
        """Off the screen for a moment (a new capture is taken); the conversation and a running answer go on."""
        if not self.closed:
            self.win.withdraw()

    def show(self) -> None:
        if not self.closed:
            self.win.deiconify()

    def rect(self) -> Rect:
        """Where the popup is on screen (left, top, width, height), for placing the next one beside it."""
        w = self.win
        return w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()

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
            self._update_copy()
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
            self._set_note(DEMO_NOTE)
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
        self._cancel_redraw()  # the terminal event renders the whole answer itself
        self._live, self._live_turn = None, None
        self.stop_button.configure(state="disabled")
        self.ask_button.configure(state="normal")
        self._update_copy()
        self.question.focus_set()

    def _update_copy(self) -> None:
        """Copy is there only when there is an answer to copy."""
        has_text = any(t.answer for t in self._turns)
        self.copy_button.configure(state="normal" if has_text else "disabled")

    # -- drawing ---------------------------------------------------------------------------------------
    def _render(self) -> None:
        """Show the transcript; the view redraws only what changed (per chunk: the end of the live answer)."""
        turns = [(turn.question if len(self._turns) > 1 or turn.question != self._settings.default_prompt
                  else None, turn.answer) for turn in self._turns]
        self.view.show_conversation(turns, streaming=self._live_turn is not None)
        t = self.answer
        newest = t.tag_prevrange(QUESTION, "end")  # where the newest question starts (see `_follow`)
        if newest:
            t.mark_set("last_question", newest[0])
            t.mark_gravity("last_question", "left")
        else:
            t.mark_unset("last_question")
        self._follow()

    def _append_live(self, text: str) -> None:
        """Add streamed text to the live answer; it is drawn when Tk is next idle.

        Not at once: Tk redraws windows only when its queue is empty, and a fast stream (the demo model's
        ~900 tokens/s) keeps it full if every chunk re-renders, so the answer would appear only at the end.
        Appending is cheap, the queue empties, and one render then covers every chunk that came meanwhile."""
        if self._live_turn is None:
            return
        self._live_turn.answer += text
        if self._redraw_pending is None:
            self._redraw_pending = self.win.after_idle(self._redraw_live)

    def _redraw_live(self) -> None:
        self._redraw_pending = None
        if self._live_turn is not None and not self.closed:
            self._render()

    def _cancel_redraw(self) -> None:
        if self._redraw_pending is not None:
            self.win.after_cancel(self._redraw_pending)
            self._redraw_pending = None

    def answer_text(self) -> str:
        """The transcript as shown (for tests and accessibility tools)."""
        return self.answer.get("1.0", "end-1c")

    def _follow(self) -> None:
        """Show the newest text, but never scroll the newest question out of view: once it reaches the top,
        the view stays and the rest of a long answer is a scroll away (as in chat apps)."""
        t = self.answer
        t.see("end")
        if "last_question" not in t.mark_names():
            return
        if t.compare("last_question", "<", "@0,0"):
            t.yview("last_question")

    def _set_state(self, state: str, text: str) -> None:
        self.state = state
        self.status_text = text
        self.status.configure(foreground=self.palette.error if state == "error" else self.palette.fg)
        if not self.closed:
            self.win.title(f"{TITLE} - {TITLES.get(state, state)}")  # ASCII: X tools read WM_NAME as Latin-1
            self._fit_lines()

    def _set_note(self, text: str) -> None:
        self.note_text = text
        self._fit_lines()

    def _flash(self, text: str) -> None:
        """A passing message ("Copied ...") in the status line; the note line (demo warning) is not touched."""
        self.status_text = text
        self.status.configure(foreground=self.palette.fg)
        self._fit_lines()
