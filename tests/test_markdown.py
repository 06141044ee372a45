"""Markdown -> tagged pieces for the popup (markdown-it-py underneath): every construct the popup shows, the
streaming rules (hold back half-typed markers, an open fence is code at once), and the incremental renderer
(re-parses only the end, and converges to what one parse of the whole text gives)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_tray.logs import setup_logging
from qwen_tray.ui import markdown
from qwen_tray.ui.markdown import (
    BOLD,
    BOLDITALIC,
    BULLET,
    CODE,
    CODEBLOCK,
    CODEHEAD,
    CODELAST,
    CTRL,
    HR,
    ITALIC,
    LINK,
    QUOTE,
    STRIKE,
    TABLE,
    TABLEHEAD,
    URL,
    Copy,
    Renderer,
    Span,
    plain_text,
    render,
)


def test_paragraphs_are_separated_by_a_blank_line_and_keep_their_line_breaks() -> None:
    assert render("Hello, world.\nSecond line.\n\nNext paragraph.") == [
        Span("Hello, world.\nSecond line.\n\nNext paragraph.\n")]


def test_inline_styles() -> None:
    assert render("**b** *i* ***bi*** `c` ~~s~~") == [
        Span("b", (BOLD,)), Span(" "), Span("i", (ITALIC,)), Span(" "), Span("bi", (BOLDITALIC,)), Span(" "),
        Span("c", (CODE,)), Span(" "), Span("s", (STRIKE,)), Span("\n")]


def test_code_span_protects_its_content_and_lone_asterisks_stay() -> None:
    assert render("`**not bold**`") == [Span("**not bold**", (CODE,)), Span("\n")]
    assert render("2 * 3 ** 4 = 162") == [Span("2 * 3 ** 4 = 162\n")]


def test_headings_by_level() -> None:
    assert render("# One\n## Two\n#### Four") == [
        Span("One\n", ("h1",)), Span("\n"), Span("Two\n", ("h2",)), Span("\n"), Span("Four\n", ("h3",))]


def test_fenced_code_block_has_a_header_with_its_language_and_a_copy_of_exactly_its_code() -> None:
    pieces = render("Try:\n```python\nx = 1 ** 2\nprint(`x`)\n```\nDone.")
    head = (CODEBLOCK, CODEHEAD, "codemargin0")
    assert pieces == [
        Span("Try:\n\n"),
        Span("python  ", head), Copy("x = 1 ** 2\nprint(`x`)", head), Span("\n", head),
        Span("x = 1 ** 2\n", (CODEBLOCK, "codemargin0")),
        Span("print(`x`)\n", (CODEBLOCK, "codemargin0", CODELAST)),
        Span("\nDone.\n")]


def test_indented_code_block_is_a_code_block_too() -> None:
    pieces = render("Run:\n\n    make all\n    make test\n")
    assert Copy("make all\nmake test", (CODEBLOCK, CODEHEAD, "codemargin0")) in pieces
    assert plain_text(pieces) == "Run:\n\n  \nmake all\nmake test\n"


def test_an_unclosed_fence_is_code_while_streaming() -> None:
    pieces = render("Use:\n```sh\nls -l", streaming=True)
    assert pieces[-1] == Span("ls -l\n", (CODEBLOCK, "codemargin0", CODELAST))
    assert Copy("ls -l", (CODEBLOCK, CODEHEAD, "codemargin0")) in pieces


def test_nested_bullet_and_numbered_lists() -> None:
    pieces = render("- one\n- **two**\n  - nested `x`\n    1. deep\n\n3. three\n4. four")
    assert pieces == [
        Span("\u2022\t", ("hang1", BULLET)), Span("one\n", ("hang1",)),
        Span("\u2022\t", ("hang1", BULLET)), Span("two", ("hang1", BOLD)), Span("\n", ("hang1",)),
        Span("\u25e6\t", ("hang2", BULLET)), Span("nested ", ("hang2",)), Span("x", ("hang2", CODE)),
        Span("\n", ("hang2",)),
        Span("1.\t", ("hang3", BULLET)), Span("deep\n", ("hang3",)),
        Span("\n"),
        Span("3.\t", ("hang1", BULLET)), Span("three\n", ("hang1",)),
        Span("4.\t", ("hang1", BULLET)), Span("four\n", ("hang1",))]


def test_a_list_items_later_lines_use_the_items_margin() -> None:
    assert render("- first line\n  second line") == [
        Span("\u2022\t", ("hang1", BULLET)), Span("first line\n", ("hang1",)), Span("second line\n", ("margin1",))]


def test_block_quote() -> None:
    assert render("> quoted **text**\n>\n> more") == [
        Span("quoted ", (QUOTE, "margin1")), Span("text", (QUOTE, "margin1", BOLD)),
        Span("\n\nmore\n", (QUOTE, "margin1"))]


def test_links_show_their_target_and_autolinks_do_not_repeat_it() -> None:
    assert render("see [the docs](<https://example.com/a b>) or <https://x.org>") == [
        Span("see "), Span("the docs", (LINK,)), Span(" <https://example.com/a b>", (URL,)), Span(" or "),
        Span("https://x.org", (LINK,)), Span("\n")]
    # A script link is no link at all: it stays text.
    assert plain_text(render("[x](javascript:alert(1))")) == "[x](javascript:alert(1))\n"


def test_horizontal_rule_and_raw_html_as_text() -> None:
    assert render("a\n\n---\n\n<b>hi</b>") == [Span("a\n\n"), Span("\n", (HR,)), Span("\n<b>hi</b>\n")]


def test_table_is_aligned_text() -> None:
    pieces = render("| Name | Qty |\n|:--|--:|\n| apple | 3 |\n| banana **x** | 12 |")
    assert pieces == [
        Span("Name     \u2502 Qty\n", (TABLE, TABLEHEAD)),
        Span("\u2500" * 9 + "\u253c" + "\u2500" * 4 + "\n"
             "apple    \u2502   3\nbanana x \u2502  12\n", (TABLE,))]


def test_control_characters_are_written_out_and_left_out_of_copies() -> None:
    pieces = render("a\x10b \u202e\n```\nrm\x1b[2J -i\x18\n```")
    assert pieces[:5] == [Span("a"), Span("\\x10", (CTRL,)), Span("b "), Span("<U+202E>", (CTRL,)), Span("\n\n")]
    assert Copy("rm[2J -i", (CODEBLOCK, CODEHEAD, "codemargin0")) in pieces
    shown = plain_text(pieces)
    assert "\\x1b[2J" in shown and "\\x18" in shown
    assert not any(ord(c) < 0x20 and c not in "\n\t" or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in shown)


@pytest.mark.parametrize(("partial", "shown"), [
    ("Foo\n-", "Foo\n"),  # not a setext heading for one chunk: a list item is on its way
    ("Foo\n1.", "Foo\n"),
    ("Foo\n| a |\n|--", "Foo\n| a |\n"),
    ("Some **", "Some\n"),  # an opening marker alone shows nothing yet
    ("``", ""),
    ("x = a*", "x = a*\n"),  # not an opener (no space before it): shown
    ("use `x`", "use x\n"),
])
def test_streaming_holds_back_half_typed_markers(partial: str, shown: str) -> None:
    assert plain_text(render(partial, streaming=True)) == shown


def test_final_render_shows_everything_even_a_trailing_marker() -> None:
    assert render("Foo\n-") == [Span("Foo\n", ("h2",))]  # CommonMark: a setext heading, once it is final


def long_answer() -> str:
    parts = []
    for i in range(30):
        parts.append(f"## Part {i}\nSome **bold {i}** words and `code {i}` \U0001F600 in a paragraph {i}.\n")
        parts.append(f"- item {i}\n  - nested *{i}*\n- another **item**\n\n")
        if i % 5 == 0:
            parts.append("```python\nx = 1  # **not bold** here\n\ny = 2\n```\n")
        if i % 7 == 0:
            parts.append("| a | b |\n|---|--:|\n| 1 | 22 |\n\n> quote\nlazy\n\n---\n")
        parts.append(f"Setext {i}\n---\n1. one\n2. two \x10\n\n")
    return "".join(parts)


def test_incremental_updates_equal_a_fresh_render_and_parse_only_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    text = long_answer()
    parsed: list[int] = []
    real_parse = markdown._MD.parse

    def counting_parse(src: str, env: dict | None = None) -> list:
        parsed.append(len(src))
        return real_parse(src, env)

    r = Renderer()
    monkeypatch.setattr(markdown._MD, "parse", counting_parse)
    for n, end in enumerate(range(3, len(text), 3)):
        blocks = r.update(text[:end], streaming=True)
        if n % 97 == 0:
            monkeypatch.setattr(markdown._MD, "parse", real_parse)
            assert blocks == Renderer().update(text[:end], streaming=True), f"at {end}"
            monkeypatch.setattr(markdown._MD, "parse", counting_parse)
    streamed = len(parsed)
    final = r.update(text)
    monkeypatch.setattr(markdown._MD, "parse", real_parse)
    assert markdown.merge([p for b in final for p in b.pieces]) == render(text)
    # Each update parsed about the last two blocks, never the whole answer (the longest two blocks here are well
    # under 400 characters), the final one too.
    assert max(parsed) < 400 < len(text), max(parsed)
    assert len(parsed) == streamed + 1


def test_a_late_link_reference_definition_applies_to_earlier_links() -> None:
    text = "See [the docs][d].\n\nMore.\n\n" + "Filler paragraph.\n\n" * 5 + "[d]: https://example.com\n"
    r = Renderer()
    for end in range(1, len(text) + 1):
        r.update(text[:end], streaming=True)
    pieces = markdown.merge([p for b in r.update(text) for p in b.pieces])
    assert pieces == render(text)
    assert pieces[:3] == [Span("See "), Span("the docs", (LINK,)), Span(" <https://example.com>", (URL,))]


def test_empty_text() -> None:
    assert render("") == [] and render("", streaming=True) == []


def test_the_parser_does_not_flood_a_debug_log(tmp_path: Path) -> None:
    """markdown-it logs every rule it tries at DEBUG: with `[log] level = "DEBUG"` that was thousands of lines per
    answer, slowing the popup to a crawl."""
    log = tmp_path / "qwen-tray.log"
    setup_logging(log, "DEBUG", stderr=False)
    try:
        render(long_answer())
    finally:
        setup_logging(None, "WARNING", stderr=False)
    assert "markdown_it" not in log.read_text()
