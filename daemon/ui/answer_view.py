"""The answer's view: Markdown shown in a read-only Tk Text, updated in place while the answer streams.

Why a widget of its own: the popup only says "this is the answer so far"; how Markdown becomes tagged
text, how a growing answer is redrawn without flicker or quadratic work, and the Copy button of each code
block are one job, testable on its own.

Incremental: `markdown.Renderer` re-parses only the end of a growing answer; this view then compares the
new blocks with those on screen and rewrites the Text only from the first piece that differs (inside a
span, from its first differing character), so finished blocks, and the start of the block being written,
are never touched: a streaming paragraph is mostly appended to, and a code block's Copy button stays the
same widget while its code grows (its code is updated in place).

Everything here runs on the Tk thread.
"""

from __future__ import annotations

import tkinter as tk
import tkinter.font
from collections.abc import Callable, Mapping, Sequence

from . import markdown
from .markdown import Copy, Piece, Renderer, Span

QUESTION = "question"  # a question line in a conversation (`show_conversation`)
QUESTION_MARK = "\u203a "

LIGHT: dict[str, str] = {
    "fg": "#1b1b1b",
    "bg": "#fbfbfb",
    "code_bg": "#eef0f3",
    "code_fg": "#1b1b1b",
    "muted": "#6b6b6b",
    "accent": "#005fb8",
    "select_bg": "#cce4f7",
}

Turn = tuple["str | None", str]  # (question shown above the answer, or None; the answer's Markdown)


def _piece_len(p: Piece) -> int:
    """Length in the "1.0 + N chars" arithmetic the view uses: an embedded window is one character, and so is
    an emoji (Tk 8.6 gives it two line.column positions, but "+ N chars" steps over it whole)."""
    return 1 if isinstance(p, Copy) else len(p.text)


class AnswerView:
    """A read-only Text showing Markdown; `show()` it the whole answer so far, as often as it grows."""

    def __init__(self, master: tk.Misc, colours: Mapping[str, str] | None = None,
                 on_copy: Callable[[str], None] | None = None, font: tuple | None = None,
                 mono_font: tuple | None = None, **text_options: object) -> None:
        """`colours`: keys fg, bg, code_bg, code_fg, muted, accent, select_bg (`LIGHT` when None).
        `on_copy(code)`: what a code block's Copy button does (default: put the code on the clipboard).
        `text_options` go to the tk.Text (width, height...)."""
        self.colours = dict(LIGHT if colours is None else colours)
        self._on_copy = on_copy
        options: dict = {"wrap": "word", "relief": "flat", "borderwidth": 0, "highlightthickness": 0,
                         "padx": 8, "pady": 6, "state": "disabled", "cursor": "arrow", "takefocus": 0,
                         "undo": False}
        options.update(text_options)
        self.widget = tk.Text(master, **options)
        base = tkinter.font.nametofont("TkDefaultFont", root=master).actual()
        fixed = tkinter.font.nametofont("TkFixedFont", root=master).actual()
        self._font = font or (base["family"], base["size"])
        self._mono = mono_font or (fixed["family"], fixed["size"])
        self.source = ""  # the Markdown last shown (the last turn's answer in a conversation)
        self._renderers: list[Renderer] = []
        self._questions: dict[tuple[str, bool], tuple[Piece, ...]] = {}
        self._blocks: list[tuple[Piece, ...]] = []  # what the widget shows, block by block
        self._lengths: list[int] = []  # each block's length in Tk index characters
        self._codes: dict[str, str] = {}  # Copy button (widget name) -> the code it copies
        self._configure_tags()
        self.set_colours(self.colours)

    # -- public --------------------------------------------------------------------------------------------
    def show(self, markdown_source: str, streaming: bool = False) -> None:
        """Show `markdown_source` (the whole answer so far); `streaming`: more will follow."""
        self.show_conversation([(None, markdown_source)], streaming)

    def show_conversation(self, turns: Sequence[Turn], streaming: bool = False) -> None:
        """Show questions and their answers, one after the other; `streaming` applies to the last answer."""
        while len(self._renderers) < len(turns):
            self._renderers.append(Renderer())
        del self._renderers[len(turns):]
        blocks: list[tuple[Piece, ...]] = []
        for i, (question, answer) in enumerate(turns):
            if question is not None:
                blocks.append(self._question(question, first=i == 0))
            live = streaming and i == len(turns) - 1
            blocks += [b.pieces for b in self._renderers[i].update(answer, live)]
        self.source = turns[-1][1] if turns else ""
        self._apply(blocks)

    def clear(self) -> None:
        """Show nothing (and forget the parse state)."""
        self._renderers.clear()
        self._questions.clear()
        self.source = ""
        self._apply([])

    def text(self) -> str:
        """What the widget shows, as text."""
        return self.widget.get("1.0", "end-1c")

    def set_colours(self, colours: Mapping[str, str]) -> None:
        """Recolour the widget, its tags and its Copy buttons (a light/dark switch)."""
        c = self.colours = {**LIGHT, **colours}
        t = self.widget
        t.configure(background=c["bg"], foreground=c["fg"], insertbackground=c["fg"],
                    selectbackground=c["select_bg"], selectforeground=c["fg"],
                    inactiveselectbackground=c["select_bg"])
        t.tag_configure(markdown.CODE, background=c["code_bg"], foreground=c["code_fg"])
        t.tag_configure(markdown.CODEBLOCK, background=c["code_bg"], foreground=c["code_fg"])
        t.tag_configure(markdown.CODEHEAD, foreground=c["muted"])
        for d in range(markdown.MAX_DEPTH + 1):
            t.tag_configure(f"{markdown.CODEMARGIN}{d}", rmargincolor=c["code_bg"],
                            lmargincolor=c["code_bg"] if d == 0 else "")
        t.tag_configure(markdown.QUOTE, foreground=c["muted"])
        t.tag_configure(markdown.CTRL, foreground=c["muted"], background=c["code_bg"])
        t.tag_configure(markdown.BULLET, foreground=c["muted"])
        t.tag_configure(markdown.URL, foreground=c["muted"])
        t.tag_configure(markdown.LINK, foreground=c["accent"])
        t.tag_configure(markdown.HR, background=c["muted"])
        t.tag_configure(markdown.TABLEHEAD, foreground=c["fg"])
        t.tag_configure(QUESTION, foreground=c["accent"])
        for name in t.window_names():
            self._style_button(t.nametowidget(name))

    # -- layout --------------------------------------------------------------------------------------------
    def _configure_tags(self) -> None:
        t = self.widget
        fam, size = self._font[0], int(self._font[1])
        mono, msize = self._mono[0], int(self._mono[1])
        t.configure(font=(fam, size))
        em = tkinter.font.Font(root=t, font=(fam, size)).measure("0") or 8
        step = 2 * em + em // 2  # one nesting level
        pad = em  # a code block's inner padding

        # Lowest priority first: margins, then styles, then fonts that must win (code over bold, ...).
        for d in range(1, markdown.MAX_DEPTH + 1):
            t.tag_configure(f"{markdown.MARGIN}{d}", lmargin1=d * step, lmargin2=d * step)
            t.tag_configure(f"{markdown.HANG}{d}", lmargin1=(d - 1) * step + em // 2, lmargin2=d * step,
                            tabs=(d * step,))
        for d in range(markdown.MAX_DEPTH + 1):
            t.tag_configure(f"{markdown.CODEMARGIN}{d}", lmargin1=d * step + pad, lmargin2=d * step + pad,
                            rmargin=pad)
        t.tag_configure(markdown.QUOTE)
        t.tag_configure(markdown.BULLET)
        t.tag_configure(markdown.BOLD, font=(fam, size, "bold"))
        t.tag_configure(markdown.ITALIC, font=(fam, size, "italic"))
        t.tag_configure(markdown.BOLDITALIC, font=(fam, size, "bold", "italic"))
        for level, tag in enumerate(markdown.HEADINGS):
            t.tag_configure(tag, font=(fam, _bigger(size, (5, 3, 1)[level]), "bold"), spacing1=2, spacing3=2)
        t.tag_configure(markdown.STRIKE, overstrike=True)
        t.tag_configure(markdown.TABLE, font=(mono, msize))
        t.tag_configure(markdown.TABLEHEAD, font=(mono, msize, "bold"))
        t.tag_configure(markdown.CODE, font=(mono, msize))
        t.tag_configure(markdown.CODEBLOCK, font=(mono, msize))
        t.tag_configure(markdown.CODEHEAD, font=(fam, _bigger(size, -1)), spacing1=4, justify="right")
        t.tag_configure(markdown.CODELAST, spacing3=6)
        t.tag_configure(markdown.URL)
        t.tag_configure(markdown.LINK, underline=True)
        t.tag_configure(markdown.HR, font=(fam, -2))
        t.tag_configure(markdown.CTRL, font=(mono, _bigger(msize, -1)))
        t.tag_configure(QUESTION, font=(fam, size, "bold"), spacing1=2, spacing3=4)

    def _question(self, question: str, first: bool) -> tuple[Piece, ...]:
        key = (question, first)
        if key not in self._questions:
            lead = "" if first else "\n"
            spans = markdown.safe_spans(lead + QUESTION_MARK + question + "\n", (QUESTION,))
            self._questions[key] = tuple(markdown.merge(spans))
        return self._questions[key]

    # -- the update ------------------------------------------------------------------------------------------
    def _apply(self, blocks: list[tuple[Piece, ...]]) -> None:
        """Make the widget show `blocks`, rewriting it only from the first piece that differs."""
        old = self._blocks
        i = 0
        while i < len(old) and i < len(blocks) and (old[i] is blocks[i] or old[i] == blocks[i]):
            i += 1
        if i == len(old) == len(blocks):
            return
        pos = sum(self._lengths[:i])
        rest: list[Piece] = []
        if i < len(old) and i < len(blocks):
            a, b = old[i], blocks[i]
            j = 0
            while j < len(a) and j < len(b):
                if a[j] == b[j]:
                    pos += _piece_len(a[j])
                elif isinstance(a[j], Copy) and isinstance(b[j], Copy):  # the same button, its code grew
                    self._codes[str(self.widget.window_cget(f"1.0 + {pos} chars", "window"))] = b[j].code
                    pos += 1
                else:
                    break
                j += 1
            rest = list(b[j:])
            if rest and j < len(a) and isinstance(a[j], Span) and isinstance(b[j], Span) and a[j].tags == b[j].tags:
                old_text, new_text = a[j].text, b[j].text
                p = len(old_text) if new_text.startswith(old_text) else _common_prefix(old_text, new_text)
                pos += p
                rest[0] = Span(new_text[p:], b[j].tags)
            for block in blocks[i + 1:]:
                rest += block
        else:
            for block in blocks[i:]:
                rest += block
        t = self.widget
        t.configure(state="normal")
        try:
            t.delete(f"1.0 + {pos} chars", "end-1c")
            self._insert(rest)
        finally:
            t.configure(state="disabled")
        if self._codes:
            alive = {str(w) for w in t.window_names()}
            self._codes = {name: code for name, code in self._codes.items() if name in alive}
        self._blocks = list(blocks)
        self._lengths = self._lengths[:i] + [sum(_piece_len(p) for p in b) for b in blocks[i:]]

    def _insert(self, pieces: list[Piece]) -> None:
        t = self.widget
        args: list = []
        for p in pieces:
            if isinstance(p, Span):
                if p.text:
                    args += [p.text, p.tags]
                continue
            if args:
                t.insert("end", *args)
                args = []
            button = tk.Button(t, text="Copy", command=lambda: None)
            name = str(button)
            button.configure(command=lambda n=name: self._copy(n))
            button.bind("<Leave>", lambda e: e.widget.configure(text="Copy"))
            for wheel in ("<MouseWheel>", "<Button-4>", "<Button-5>"):  # scroll the answer, not nothing
                button.bind(wheel, self._wheel)
            self._style_button(button)
            self._codes[name] = p.code
            t.window_create("end-1c", window=button, align="center")
            for tag in p.tags:  # the line's background and spacing under the button too
                t.tag_add(tag, "end-2c")
        if args:
            t.insert("end", *args)

    def _style_button(self, button: tk.Misc) -> None:
        c = self.colours
        button.configure(relief="flat", borderwidth=0, highlightthickness=0, padx=6, pady=0, cursor="hand2",
                         takefocus=0, background=c["code_bg"], foreground=c["accent"],
                         activebackground=c["select_bg"], activeforeground=c["fg"],
                         font=self.widget.tag_cget(markdown.CODEHEAD, "font"))

    def _wheel(self, event: tk.Event) -> str:
        step = -1 if getattr(event, "num", 0) == 4 or getattr(event, "delta", 0) > 0 else 1
        self.widget.yview_scroll(step * (max(1, abs(event.delta) // 120) if event.delta else 1), "units")
        return "break"

    def _copy(self, name: str) -> None:
        code = self._codes.get(name, "")
        if self._on_copy is not None:
            self._on_copy(code)
        else:
            self.widget.clipboard_clear()
            self.widget.clipboard_append(code)
        self.widget.nametowidget(name).configure(text="Copied")  # back to "Copy" when the pointer leaves


def _common_prefix(a: str, b: str) -> int:
    p, limit = 0, min(len(a), len(b))
    while p < limit and a[p] == b[p]:
        p += 1
    return p


def _bigger(size: int, by: int) -> int:
    """A font size `by` points bigger (Tk sizes below 0 are pixels: bigger is more negative)."""
    return size - by if size < 0 else size + by
