"""The answer view on a real X server: streamed Markdown ends exactly as if shown at once, finished blocks are
never rewritten, each code block's Copy button (clicked with xdotool) copies exactly its code, and control
characters from the model are written out, never shown raw."""

from __future__ import annotations

import tkinter as tk
import tkinter.font
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from test_markdown import long_answer
from uitools import pump, run_while_pumping, settle
from xvfb import XvfbDisplay

from qwen_tray.ui import markdown
from qwen_tray.ui.answer_view import LIGHT, AnswerView

pytestmark = pytest.mark.desktop


@pytest.fixture
def window(tk_root: tk.Tk, ui_display: XvfbDisplay) -> Iterator[tk.Toplevel]:
    win = tk.Toplevel(tk_root)
    win.geometry("640x700+20+20")
    yield win
    win.destroy()


def view_in(win: tk.Misc) -> AnswerView:
    view = AnswerView(win, LIGHT, width=70, height=40)
    view.widget.pack(fill="both", expand=True)
    return view


def dump(view: AnswerView) -> tuple[str, dict[str, list[str]], list[str]]:
    """What the widget shows: its text, every tag's ranges, and where its embedded windows are."""
    t = view.widget
    tags = {tag: [str(i) for i in t.tag_ranges(tag)] for tag in t.tag_names() if tag != "sel" and t.tag_ranges(tag)}
    windows = sorted(t.index(name) for name in t.window_names())
    return t.get("1.0", "end-1c"), tags, windows


def test_streaming_in_chunks_ends_exactly_like_showing_the_whole_answer(window: tk.Toplevel, tk_root: tk.Tk) -> None:
    text = long_answer()
    streamed, reference = view_in(window), view_in(window)
    for n, end in enumerate(range(7, len(text) + 7, 7)):
        streamed.show(text[:end], streaming=True)
        if n % 150 == 0:  # mid-stream too: the same as a fresh view given the same text
            reference.show(text[:end], streaming=True)
            assert dump(streamed) == dump(reference), f"after {end} characters"
            reference.clear()
    streamed.show(text)
    reference.show(text)
    assert dump(streamed) == dump(reference)
    assert streamed.source == text
    # the content really is rendered (headings, code with its buttons, a table, an emoji before later text)
    shown, tags, windows = dump(streamed)
    assert "Part 29" in shown and "**" not in shown.split("```")[0].replace("**not bold**", "")
    assert {"h2", markdown.CODEBLOCK, markdown.TABLE, markdown.CTRL, markdown.HR} <= set(tags)
    assert len(windows) == 6  # one Copy button per code block


def test_finished_blocks_are_never_rewritten_while_streaming(window: tk.Toplevel) -> None:
    view = view_in(window)
    text = long_answer()
    first_part = text.index("## Part 3")  # Parts 0-2 are finished once Part 3 has started
    view.show(text[: first_part + 3], streaming=True)
    t = view.widget
    finished_end = t.search("Part 2", "1.0")
    assert finished_end
    t.mark_set("probe", f"{finished_end} + 3 chars")  # inside a finished block; a rewrite would move it
    t.mark_gravity("probe", "right")
    probe_at, before = t.index("probe"), t.get("1.0", "probe")
    deleted: list[int] = []
    real_delete = t.delete

    def counting_delete(first: str, last: str | None = None) -> None:
        assert t.compare(first, ">=", "probe"), f"rewrote from {t.index(first)}, before the finished blocks"
        n = t.count(first, last or f"{first} + 1 char", "chars")
        deleted.append(int((n[0] if isinstance(n, tuple) else n) or 0))
        real_delete(first, last)

    t.delete = counting_delete  # type: ignore[method-assign]
    button = None
    for end in range(first_part + 3, len(text) + 5, 5):
        view.show(text[:end], streaming=True)
        if button is None and t.window_names():
            button = str(t.window_names()[-1])
    view.show(text)
    assert t.index("probe") == probe_at and t.get("1.0", "probe") == before
    # Updates append: what they delete is a line end, a list marker's line or the last line of a growing code
    # block, never the answer so far (re-showing it all would delete ~4,000 characters per update here).
    assert max(deleted) <= 40 and sum(deleted) < len(text), (max(deleted), sum(deleted), len(text))
    # A code block's Copy button stayed the same widget while its code streamed in.
    assert button is not None and button in [str(w) for w in t.window_names()]


def test_each_copy_button_copies_exactly_its_blocks_code(window: tk.Toplevel, tk_root: tk.Tk,
                                                        ui_display: XvfbDisplay) -> None:
    view = view_in(window)
    first = "echo one\n  indented\ttab"
    second = 'print("two")\n\nprint("three \U0001F600")'
    view.show(f"Intro **text**.\n\n```sh\n{first}\n```\n\nBetween.\n\n```python\n{second}\n```\nThe end.\n")
    pump(tk_root, lambda: window.winfo_viewable() and len(view.widget.window_names()) == 2, 10, "the buttons")
    tk_root.update()
    buttons = [view.widget.nametowidget(str(n)) for n in view.widget.window_names()]
    env = ui_display.env()
    for button, code in zip(sorted(buttons, key=lambda b: b.winfo_rooty()), (first, second), strict=True):
        assert button.cget("text") == "Copy"
        x, y = button.winfo_rootx() + button.winfo_width() // 2, button.winfo_rooty() + button.winfo_height() // 2
        run_while_pumping(tk_root, ["xdotool", "mousemove", str(x), str(y), "click", "1"], env)
        pump(tk_root, lambda b=button: b.cget("text") == "Copied", 10, "the click")
        clip = run_while_pumping(tk_root, ["xclip", "-selection", "clipboard", "-o"], env)
        assert clip == code
    # the code blocks are set apart: their own background and a monospace font
    assert view.widget.tag_cget(markdown.CODEBLOCK, "background") == LIGHT["code_bg"]
    code_font = tkinter.font.Font(root=view.widget, font=view.widget.tag_cget(markdown.CODEBLOCK, "font"))
    assert code_font.metrics("fixed") == 1


def test_control_characters_are_shown_as_visible_text_and_not_copied(window: tk.Toplevel, tk_root: tk.Tk) -> None:
    copied: list[str] = []
    view = AnswerView(window, LIGHT, on_copy=copied.append)
    view.widget.pack()
    noise = "a\x10b\x12c\x18d \x1b[31mred\x07 \u202eevil\u202c \x9b2J"
    view.show(f"{noise}\n\n```\nls\x1b[2J -l\x10\n```")
    shown = view.text()
    assert shown.startswith("a\\x10b\\x12c\\x18d \\x1b[31mred\\x07 <U+202E>evil<U+202C> \\x9b2J\n")
    assert not [c for c in shown if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0
                or 0x202A <= ord(c) <= 0x202E]
    ranges = view.widget.tag_ranges(markdown.CTRL)
    marked = [view.widget.get(ranges[i], ranges[i + 1]) for i in range(0, len(ranges), 2)]
    assert marked[:4] == ["\\x10", "\\x12", "\\x18", "\\x1b"] and "<U+202E>" in marked
    (name,) = view.widget.window_names()
    view.widget.nametowidget(str(name)).invoke()
    assert copied == ["ls[2J -l"]


def test_recolouring_reaches_tags_and_buttons(window: tk.Toplevel) -> None:
    view = view_in(window)
    view.show("`x`\n\n```\ncode\n```")
    dark = {"fg": "#f0f0f0", "bg": "#1f1f1f", "code_bg": "#2b2b2b", "code_fg": "#e8e8e8", "muted": "#a0a0a0",
            "accent": "#60cdff", "select_bg": "#264f78"}
    view.set_colours(dark)
    t = view.widget
    assert t.cget("background") == "#1f1f1f" and t.tag_cget(markdown.CODE, "background") == "#2b2b2b"
    (name,) = t.window_names()
    assert t.nametowidget(str(name)).cget("background") == "#2b2b2b"
    view.clear()
    assert view.text() == "" and t.window_names() == ()


def test_the_wheel_over_a_copy_button_scrolls_the_answer(window: tk.Toplevel, tk_root: tk.Tk,
                                                         ui_display: XvfbDisplay) -> None:
    view = view_in(window)
    view.show("```\ncode\n```\n\n" + "\n\n".join(f"paragraph {i}" for i in range(100)))
    pump(tk_root, lambda: window.winfo_viewable() and view.widget.window_names() != (), 10, "the button")
    tk_root.update()
    button = view.widget.nametowidget(str(view.widget.window_names()[0]))
    x, y = button.winfo_rootx() + 5, button.winfo_rooty() + 5
    assert view.widget.yview()[0] == 0.0
    run_while_pumping(tk_root, ["xdotool", "mousemove", str(x), str(y), "click", "5", "click", "5"], ui_display.env())
    pump(tk_root, lambda: view.widget.yview()[0] > 0.0, 10, "the scroll")


SAMPLE = """## Fixing the error
The file is looked up **relative to the current folder**, so `settings.toml` is not found:

1. Pass an absolute path, or
2. start the app from its folder:
   - `cd app`
   - then run it again

```python
from pathlib import Path
CONFIG = Path(__file__).with_name("settings.toml")
```

| Option | Default |
|:--|--:|
| `--config` | settings.toml |

> Tip: `--config` also accepts `~`. Noise from the model: \x10\x18
"""
DARK = {"fg": "#f0f0f0", "bg": "#202020", "code_bg": "#2d2d2d", "code_fg": "#e8e8e8", "muted": "#a0a0a0",
        "accent": "#60cdff", "select_bg": "#264f78"}


def hex_colour(image: Image.Image, x: int, y: int) -> str:
    r, g, b = image.convert("RGB").getpixel((x, y))
    return f"#{r:02x}{g:02x}{b:02x}"


def test_picture_light_and_dark_code_blocks_set_apart(tk_root: tk.Tk, ui_display: XvfbDisplay,
                                                      artifacts_dir: Path) -> None:
    """The picture in the README (light and dark side by side); the code block's own background is on screen."""
    wins = []
    try:
        for i, colours in enumerate((LIGHT, DARK)):
            win = tk.Toplevel(tk_root, background=colours["bg"])
            win.geometry(f"520x470+{10 + i * 530}+10")
            view = AnswerView(win, colours, width=60, height=24)
            view.widget.pack(fill="both", expand=True)
            view.show(SAMPLE)
            wins.append((win, view, colours))
        pump(tk_root, lambda: all(w.winfo_viewable() for w, _, _ in wins), 10, "the windows")
        settle(tk_root, 0.5)
        shot = ui_display.screenshot(artifacts_dir / "answer-markdown-full.png")
        with Image.open(shot) as full:
            full.crop((10, 10, 10 + 1060, 10 + 470)).save(artifacts_dir / "answer-markdown.png")
            for _win, view, colours in wins:
                t = view.widget
                x, y, _, h = t.bbox(t.search("pathlib", "1.0"))  # in the code block, just left of its text
                assert hex_colour(full, t.winfo_rootx() + x - 3, t.winfo_rooty() + y + h // 2) == colours["code_bg"]
                x, y, _, h = t.bbox(t.search("Fixing", "1.0"))  # a heading: no background of its own
                assert hex_colour(full, t.winfo_rootx() + x - 3, t.winfo_rooty() + y) == colours["bg"]
    finally:
        for win, _, _ in wins:
            win.destroy()
