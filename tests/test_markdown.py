"""The popup's light Markdown: complete and still-streaming text become the right tagged spans."""

from __future__ import annotations

from qwen_tray.ui.markdown import BOLD, BULLET, BULLET_MARK, CODE, CODEBLOCK, HEADING, Span, plain_text, render


def test_plain_text_is_one_untagged_span() -> None:
    assert render("Hello, world.\nSecond line.") == [Span("Hello, world.\nSecond line.", ())]


def test_bold_and_inline_code() -> None:
    assert render("Run **make** then `pytest -q` now") == [
        Span("Run ", ()),
        Span("make", (BOLD,)),
        Span(" then ", ()),
        Span("pytest -q", (CODE,)),
        Span(" now", ()),
    ]


def test_underscore_bold_and_code_inside_bold() -> None:
    assert render("__a `b` c__") == [Span("a ", (BOLD,)), Span("b", (BOLD, CODE)), Span(" c", (BOLD,))]


def test_code_span_protects_its_content_from_bold() -> None:
    assert render("`**not bold**`") == [Span("**not bold**", (CODE,))]


def test_unclosed_markers_stay_literal_while_streaming() -> None:
    assert render("This is **bo") == [Span("This is **bo", ())]
    assert render("call `foo(") == [Span("call `foo(", ())]
    # ...and become formatting once the closing marker arrives.
    assert render("This is **bold**") == [Span("This is ", ()), Span("bold", (BOLD,))]


def test_lone_asterisks_are_not_bold() -> None:
    assert plain_text(render("2 * 3 ** 4 = 162")) == "2 * 3 ** 4 = 162"
    assert all(BOLD not in s.tags for s in render("2 * 3 ** 4 = 162"))


def test_fenced_code_block_hides_fences_and_tags_content() -> None:
    text = "Try:\n```python\nx = 1 ** 2\nprint(`x`)\n```\nDone."
    assert render(text) == [
        Span("Try:\n", ()),
        Span("x = 1 ** 2\nprint(`x`)\n", (CODEBLOCK,)),
        Span("Done.", ()),
    ]


def test_unclosed_fence_renders_as_code_while_streaming() -> None:
    assert render("Use:\n```\nls -l") == [Span("Use:\n", ()), Span("ls -l", (CODEBLOCK,))]


def test_bullets_get_a_bullet_mark_and_keep_inline_formatting() -> None:
    spans = render("Items:\n- one\n* **two**\n  + nested `x`\nend")
    assert spans == [
        Span("Items:\n", ()),
        Span(f"{BULLET_MARK}one\n{BULLET_MARK}", (BULLET,)),
        Span("two", (BULLET, BOLD)),
        Span(f"\n  {BULLET_MARK}nested ", (BULLET,)),
        Span("x", (BULLET, CODE)),
        Span("\n", (BULLET,)),
        Span("end", ()),
    ]


def test_numbered_list_keeps_numbers() -> None:
    assert render("1. first\n2) second") == [Span("1. first\n2) second", (BULLET,))]


def test_heading_is_shown_without_hashes() -> None:
    assert render("## Result ##\ntext") == [Span("Result", (HEADING,)), Span("\ntext", ())]


def test_text_is_never_lost() -> None:
    """Whatever the markup, every visible character of the answer survives (markers aside)."""
    text = "a **b** `c` d\n- e\n```\nf\n```\ng **h"
    assert plain_text(render(text)) == f"a b c d\n{BULLET_MARK}e\nf\ng **h"


def test_empty_text() -> None:
    assert render("") == []
