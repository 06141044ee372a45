"""Markdown for the answer popup: source -> blocks of tagged text for a Tk Text widget (no Tk here).

Why markdown-it-py: a CommonMark parser that is maintained and tested against the spec, with
GitHub's tables and strikethrough as plug-in rules; a hand-written renderer grew a new corner case
with every model. This module only turns its tokens into `Span`s (text plus Tk tag names) and
`Copy` places (a code block's Copy button); `answer_view.AnswerView` puts them into the widget.

Blocks: the answer is cut into its top-level blocks (a paragraph, a whole list, a code block...).
Each block's pieces end with a newline; every block but the first starts with a blank line.

Streaming (`Renderer`): the answer grows chunk by chunk. A top-level block that has a successor
other than the last is closed for good in CommonMark (only the block being written, and the one
before it through a setext underline or a table's delimiter row, can still change), so each update
parses the source again only from the start of the last-but-one block and keeps the blocks before:
the result is exactly what parsing the whole text gives. The one document-wide thing, a link
reference definition (`[x]: url`), makes every update parse everything. While streaming
(`streaming=True`), an unfinished last line that holds only
markers (`-`, `1.`, `|--`, a fence being typed...) and a just-opened `**`/`` ` `` at the very end
are held back until the next characters say what they are, so a paragraph does not flash as a
heading or a list for one chunk. An unclosed ``` fence renders as code at once (CommonMark runs it
to the end of the text).

Control characters from the model are written out (`\\x10`, tagged CTRL; `safetext.escape`); a Copy
button copies the code minus those characters (`safetext.clean`), without its last line break, so a
paste into a terminal runs nothing by itself.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

from ..safetext import CONTROLS, clean, escape, visible

# Tag names (the view configures them).
BOLD = "bold"
ITALIC = "italic"
BOLDITALIC = "bolditalic"  # Tk tags don't combine fonts: bold and italic together need their own tag
CODE = "code"  # inline code
STRIKE = "strike"
LINK = "link"
URL = "url"  # a link's target, shown after its text (links are shown, never opened)
HEADINGS = ("h1", "h2", "h3")  # h4-h6 look like h3
CODEBLOCK = "codeblock"
CODEHEAD = "codehead"  # a code block's first line: its language and the Copy button
CODELAST = "codelast"  # a code block's last line (padding below)
QUOTE = "quote"
BULLET = "bullet"  # a list item's marker
TABLE = "table"
TABLEHEAD = "tablehead"
HR = "hr"
CTRL = "ctrl"  # a control character from the model, written as `\x10` (safetext.escape)
MARGIN = "margin"  # + depth: left margin of text nested that deep (lists, quotes)
HANG = "hang"  # + depth: a list item's first line (marker in the hanging indent, then a tab)
CODEMARGIN = "codemargin"  # + depth: a code block nested that deep

BULLETS = ("\u2022", "\u25e6", "\u25aa")  # by list nesting: bullet, white bullet, small square
MAX_DEPTH = 8


@dataclass(frozen=True)
class Span:
    """A run of text and the Tk tags it carries (empty tuple = plain text)."""

    text: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Copy:
    """Where a code block's Copy button goes, the code it copies, and the tags of its place (its line's look)."""

    code: str
    tags: tuple[str, ...] = ()


Piece = Span | Copy


@dataclass(frozen=True)
class Block:
    """One top-level block as pieces; `start` is its offset in the source (where a re-parse may begin)."""

    pieces: tuple[Piece, ...]
    start: int = field(default=0, compare=False)


def parser() -> MarkdownIt:
    """CommonMark with GitHub's tables and strikethrough; raw HTML is shown as text, never interpreted;
    a single line break stays a line break (`breaks`), as people mean it in chat answers."""
    return MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])


_MD = parser()


def render(source: str, streaming: bool = False) -> list[Piece]:
    """All pieces of `source` rendered at once (what `Renderer` converges to)."""
    return merge([p for b in Renderer().update(source, streaming) for p in b.pieces])


def plain_text(pieces: list[Piece]) -> str:
    """What the pieces show as text (a Copy button shows no text)."""
    return "".join(p.text for p in pieces if isinstance(p, Span))


class Renderer:
    """One answer's blocks, kept across updates so a growing answer is re-parsed only near its end."""

    def __init__(self) -> None:
        self.source = ""  # the last update's source
        self.blocks: list[Block] = []
        self._parsed = ""  # what was parsed (source minus held-back text)
        self._fresh = False  # whether `blocks` belong to `source` (False before the first update)
        self._streaming = False

    def update(self, source: str, streaming: bool = False) -> list[Block]:
        """The blocks of `source`; `streaming`: more text will follow (hold back half-typed markers)."""
        if self._fresh and source == self.source and streaming == self._streaming:
            return self.blocks
        text = hold_back(source) if streaming else source
        if self._fresh and text == self._parsed:  # only held-back text changed
            self.source, self._streaming = source, streaming
            return self.blocks
        if len(self.blocks) >= 2 and text.startswith(self._parsed) and not _REFERENCE.search(text):
            keep, start = self.blocks[:-2], self.blocks[-2].start
        else:
            keep, start = [], 0
        self.blocks = keep + _top_blocks(_MD.parse(text[start:]), text, start, first=not keep)
        self.source, self._parsed, self._streaming, self._fresh = source, text, streaming, True
        return self.blocks


# What might be a link reference definition (`[label]: url`): it applies to links anywhere in the text, so
# then the whole text is parsed every time (rare in answers; a false match only costs time).
_REFERENCE = re.compile(r"\[[^\]\n]*\]:")
_MARKERS_ONLY = re.compile(r"[ \t]*(?:(?:[-=*+_#>|:`~]|\d{1,9}[.)])[ \t]*)*")
_OPENING_RUN = re.compile(r"(?:^|(?<=\s))[*_`~]+$")


def hold_back(source: str) -> str:
    """`source` minus what an unfinished last line cannot show yet: a line of markers only, or a run of
    `*`, `_`, `` ` ``, `~` just opened at its end (after a space or at the line's start)."""
    cut = source.rfind("\n") + 1
    last = source[cut:]
    if not last:
        return source
    if _MARKERS_ONLY.fullmatch(last):
        return source[:cut]
    m = _OPENING_RUN.search(last)
    return source[: cut + m.start()] if m else source


# -- tokens -> a small tree -----------------------------------------------------------------------------------
@dataclass
class _Node:
    token: Token
    children: list[_Node] = field(default_factory=list)

    @property
    def type(self) -> str:
        return self.token.type.removesuffix("_open")


def _tree(tokens: list[Token]) -> list[_Node]:
    root: list[_Node] = []
    stack: list[list[_Node]] = [root]
    for tok in tokens:
        if tok.nesting == 1:
            node = _Node(tok)
            stack[-1].append(node)
            stack.append(node.children)
        elif tok.nesting == -1:
            stack.pop()
        else:
            stack[-1].append(_Node(tok))
    return root


def _top_blocks(tokens: list[Token], text: str, offset: int, first: bool) -> list[Block]:
    line_starts = [offset] + [offset + i + 1 for i, c in enumerate(text[offset:]) if c == "\n"]
    blocks = []
    for node in _tree(tokens):
        pieces: list[Piece] = [] if first and not blocks else [Span("\n")]
        pieces += _block(node, _Ctx())
        line = node.token.map[0] if node.token.map else 0
        blocks.append(Block(tuple(merge(pieces)), line_starts[min(line, len(line_starts) - 1)]))
    return blocks


# -- blocks ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Ctx:
    depth: int = 0  # how deeply nested in lists and quotes
    lists: int = 0  # how many lists enclose (picks the bullet)
    quote: bool = False

    def base(self) -> tuple[str, ...]:
        tags: tuple[str, ...] = (QUOTE,) if self.quote else ()
        return (*tags, f"{MARGIN}{self.depth}") if self.depth else tags


def _block(node: _Node, ctx: _Ctx) -> list[Piece]:
    kind = node.type
    tok = node.token
    if kind == "paragraph":
        return [*_inline(node.children[0].token if node.children else None, ctx.base()), Span("\n", ctx.base())]
    if kind == "heading":
        level = min(int(tok.tag[1:]), 3)
        tags = (*ctx.base(), HEADINGS[level - 1])
        return [*_inline(node.children[0].token if node.children else None, tags), Span("\n", tags)]
    if kind in ("fence", "code_block"):
        return _code(tok, ctx)
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, ctx)
    if kind == "blockquote":
        inner = _Ctx(min(ctx.depth + 1, MAX_DEPTH), ctx.lists, True)
        return _children(node.children, inner, tight=False)
    if kind == "table":
        return _table(node, ctx)
    if kind == "hr":
        return [Span("\n", (*ctx.base(), HR))]
    if kind == "inline":
        return [*_inline(tok, ctx.base()), Span("\n", ctx.base())]
    return safe_spans(tok.content or "", ctx.base())  # html_block is off: nothing else comes here


def _children(nodes: list[_Node], ctx: _Ctx, tight: bool) -> list[Piece]:
    out: list[Piece] = []
    for i, child in enumerate(nodes):
        hidden_para = child.type == "paragraph" and child.token.hidden
        if i and not (tight and (hidden_para or child.type in ("bullet_list", "ordered_list"))):
            out.append(Span("\n", ctx.base()))
        out += _block(child, ctx)
    return out


def _list(node: _Node, ctx: _Ctx) -> list[Piece]:
    depth = min(ctx.depth + 1, MAX_DEPTH)
    inner = _Ctx(depth, ctx.lists + 1, ctx.quote)
    tight = all(p.token.hidden for item in node.children for p in item.children if p.type == "paragraph")
    out: list[Piece] = []
    for i, item in enumerate(node.children):
        if i and not tight:
            out.append(Span("\n", inner.base()))
        if node.type == "ordered_list":
            marker = f"{item.token.info}{item.token.markup}"
        else:
            marker = BULLETS[ctx.lists % len(BULLETS)]
        hang = (QUOTE,) * ctx.quote + (f"{HANG}{depth}",)
        body = _children(item.children, inner, tight) or [Span("\n", inner.base())]
        out += [Span(marker + "\t", (*hang, BULLET)), *_first_line(body, f"{MARGIN}{depth}", f"{HANG}{depth}")]
    return out


def _first_line(pieces: list[Piece], old: str, new: str) -> list[Piece]:
    """`pieces` with margin tag `old` replaced by `new` up to and including the first newline."""
    out: list[Piece] = []
    done = False
    for p in pieces:
        if done or not isinstance(p, Span):
            out.append(p)
            continue
        cut = p.text.find("\n")
        head, tail = (p.text, "") if cut < 0 else (p.text[: cut + 1], p.text[cut + 1 :])
        out.append(Span(head, tuple(new if t == old else t for t in p.tags)))
        if cut >= 0:
            done = True
            if tail:
                out.append(Span(tail, p.tags))
    return out


def _code(tok: Token, ctx: _Ctx) -> list[Piece]:
    margin = f"{CODEMARGIN}{ctx.depth}"
    quote = (QUOTE,) if ctx.quote else ()
    head = (*quote, CODEBLOCK, CODEHEAD, margin)
    body = (*quote, CODEBLOCK, margin)
    code = tok.content
    lang = visible(tok.info.split()[0]) if tok.type == "fence" and tok.info.strip() else ""
    shown = code if code.endswith("\n") else code + "\n"
    last = shown.rfind("\n", 0, len(shown) - 1) + 1
    out: list[Piece] = [Span(lang + "  ", head), Copy(clean(code).removesuffix("\n"), head), Span("\n", head)]
    return [*out, *safe_spans(shown[:last], body), *safe_spans(shown[last:], (*body, CODELAST))]


def _table(node: _Node, ctx: _Ctx) -> list[Piece]:
    rows: list[tuple[bool, list[str], list[str]]] = []  # (header?, cells, alignments)
    for part in node.children:  # thead, tbody
        for tr in part.children:
            cells = [plain_text(_inline(c.children[0].token if c.children else None, ())) for c in tr.children]
            aligns = [str(c.token.attrGet("style") or "") for c in tr.children]
            rows.append((part.type == "thead", [" ".join(c.split()) for c in cells], aligns))
    if not rows:
        return []
    ncols = max(len(r[1]) for r in rows)
    widths = [max((_width(r[1][i]) for r in rows if i < len(r[1])), default=0) for i in range(ncols)]
    out: list[Piece] = []
    base = (*ctx.base(), TABLE)
    for head, cells, aligns in rows:
        parts = []
        for i in range(ncols):
            cell = cells[i] if i < len(cells) else ""
            pad = widths[i] - _width(cell)
            align = aligns[i] if i < len(aligns) else ""
            if "right" in align:
                cell = " " * pad + cell
            elif "center" in align:
                cell = " " * (pad // 2) + cell + " " * (pad - pad // 2)
            else:
                cell = cell + " " * pad
            parts.append(cell)
        line = " \u2502 ".join(parts).rstrip() + "\n"
        out.append(Span(line, (*base, TABLEHEAD) if head else base))
        if head:
            out.append(Span("\u2500\u253c\u2500".join("\u2500" * w for w in widths) + "\n", base))
    return out


def _width(text: str) -> int:
    """Columns `text` takes in a monospace font (East Asian wide characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
               for c in text)


# -- inline ---------------------------------------------------------------------------------------------------
def _inline(tok: Token | None, base: tuple[str, ...]) -> list[Piece]:
    if tok is None or not tok.children:
        return safe_spans(tok.content, base) if tok is not None else []
    out: list[Piece] = []
    bold = italic = strike = 0
    links: list[tuple[str, int]] = []  # (href, index in out where the link text starts)

    def tags(*extra: str) -> tuple[str, ...]:
        t = list(base)
        if bold and italic:
            t.append(BOLDITALIC)
        elif bold:
            t.append(BOLD)
        elif italic:
            t.append(ITALIC)
        if strike:
            t.append(STRIKE)
        if links:
            t.append(LINK)
        return (*t, *extra)

    for child in tok.children:
        kind = child.type
        if kind in ("text", "text_special", "html_inline"):
            out += safe_spans(child.content, tags())
        elif kind in ("softbreak", "hardbreak"):
            out.append(Span("\n", tags()))
        elif kind == "code_inline":
            out += safe_spans(child.content, tags(CODE))
        elif kind in ("strong_open", "strong_close"):
            bold += 1 if kind.endswith("open") else -1
        elif kind in ("em_open", "em_close"):
            italic += 1 if kind.endswith("open") else -1
        elif kind in ("s_open", "s_close"):
            strike += 1 if kind.endswith("open") else -1
        elif kind == "link_open":
            links.append((str(child.attrGet("href") or ""), len(out)))
        elif kind == "link_close" and links:
            href, at = links.pop()
            shown = plain_text(out[at:])
            target = visible(_MD.normalizeLinkText(href))
            if target and target not in (shown, f"mailto:{shown}"):
                out.append(Span(f" <{target}>", (*base, URL)))
        elif kind == "image":
            out += safe_spans(f"[{child.content or 'image'}]", tags(URL))
    return out


def safe_spans(text: str, tags: tuple[str, ...]) -> list[Piece]:
    """`text` as spans with `tags`; each control character in it written out (`\\x10`) and tagged CTRL."""
    out: list[Piece] = []
    pos = 0
    for m in CONTROLS.finditer(text):
        out += [Span(text[pos : m.start()], tags), Span(escape(m.group()), (*tags, CTRL))]
        pos = m.end()
    out.append(Span(text[pos:], tags))
    return out


def merge(pieces: list[Piece]) -> list[Piece]:
    """Adjacent spans with equal tags joined, empty ones dropped."""
    out: list[Piece] = []
    for p in pieces:
        if isinstance(p, Span):
            if not p.text:
                continue
            last = out[-1] if out else None
            if isinstance(last, Span) and last.tags == p.tags:
                out[-1] = Span(last.text + p.text, p.tags)
                continue
        out.append(p)
    return out
