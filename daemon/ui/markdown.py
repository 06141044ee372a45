"""Light Markdown for the answer popup: text -> spans with tag names for a Tk Text widget.

Why our own tiny parser: the popup only needs bold, inline code, fenced code
blocks, bullet lists (and headings shown bold), and it must cope with text that
is still streaming in: an unclosed `**` or backtick stays literal until its
closing marker arrives, an unclosed ``` fence already renders as code. A pure
function over the whole answer is simple to test and cheap for answers of a
few thousand characters. While an answer streams, the popup renders each complete
line once (`is_fence` tells it whether a code fence opens or closes there) and
re-renders only the unfinished last line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOLD = "bold"
CODE = "code"  # inline code
CODEBLOCK = "codeblock"
BULLET = "bullet"  # a list item line (the popup indents it)
HEADING = "heading"

BULLET_MARK = "\u2022 "  # what "- ", "* " and "+ " become

_FENCE = re.compile(r"^\s*(```|~~~)")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^(\s*)(\d{1,3}[.)])\s+(.*)$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_INLINE = re.compile(r"`([^`\n]+)`|\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")


@dataclass(frozen=True)
class Span:
    """A run of text and the Tk tags it carries (empty tuple = plain text)."""

    text: str
    tags: tuple[str, ...] = ()


def render(text: str) -> list[Span]:
    """Turn (possibly incomplete) Markdown into spans; adjacent spans with equal tags are merged."""
    out: list[Span] = []
    in_fence = False
    lines = text.split("\n")
    for i, line in enumerate(lines):
        newline = "\n" if i < len(lines) - 1 else ""
        if _FENCE.match(line):
            in_fence = not in_fence
            continue  # the fence line itself (and its language tag) is not shown
        if in_fence:
            _add(out, line + newline, (CODEBLOCK,))
            continue
        _line(out, line, newline)
    return out


def is_fence(line: str) -> bool:
    """Whether this line opens or closes a fenced code block (it is not shown itself)."""
    return bool(_FENCE.match(line))


def plain_text(spans: list[Span]) -> str:
    """What the spans show, without formatting (what Copy puts on the clipboard is the raw Markdown instead)."""
    return "".join(s.text for s in spans)


def _line(out: list[Span], line: str, newline: str) -> None:
    if m := _HEADING.match(line):
        _inline(out, m.group(1), (HEADING,))
        _add(out, newline, ())
    elif m := _BULLET.match(line):
        indent = "  " * (len(m.group(1).expandtabs(4)) // 2)
        _add(out, indent + BULLET_MARK, (BULLET,))
        _inline(out, m.group(2), (BULLET,))
        _add(out, newline, (BULLET,))
    elif m := _NUMBERED.match(line):
        indent = "  " * (len(m.group(1).expandtabs(4)) // 2)
        _add(out, f"{indent}{m.group(2)} ", (BULLET,))
        _inline(out, m.group(3), (BULLET,))
        _add(out, newline, (BULLET,))
    else:
        _inline(out, line, ())
        _add(out, newline, ())


def _inline(out: list[Span], text: str, base: tuple[str, ...]) -> None:
    pos = 0
    for m in _INLINE.finditer(text):
        _add(out, text[pos : m.start()], base)
        if m.group(1) is not None:
            _add(out, m.group(1), (*base, CODE))
        else:
            _bold_run(out, m.group(2) if m.group(2) is not None else m.group(3), base)
        pos = m.end()
    _add(out, text[pos:], base)


def _bold_run(out: list[Span], text: str, base: tuple[str, ...]) -> None:
    """Bold text may itself hold inline code (`**run `make`**`)."""
    pos = 0
    for m in re.finditer(r"`([^`\n]+)`", text):
        _add(out, text[pos : m.start()], (*base, BOLD))
        _add(out, m.group(1), (*base, BOLD, CODE))
        pos = m.end()
    _add(out, text[pos:], (*base, BOLD))


def _add(out: list[Span], text: str, tags: tuple[str, ...]) -> None:
    if not text:
        return
    if out and out[-1].tags == tags:
        out[-1] = Span(out[-1].text + text, tags)
    else:
        out.append(Span(text, tags))
