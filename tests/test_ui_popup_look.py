"""The popup's look and layout on a real X server: theme (light/dark, config), a layout where nothing moves
between states, Copy only when there is something to copy, the demo note kept apart from "Copied", and the
question kept in view when a long answer ends. Real scheduler and tiny model; real key and mouse events."""

from __future__ import annotations

import tkinter as tk
import tkinter.font

import pytest
from PIL import Image
from uitools import Recorder, pump, run_while_pumping, settle
from xvfb import XvfbDisplay

from qwen_tray import capture
from qwen_tray.config import ConfigError, parse_config
from qwen_tray.engine.base import GenerationOptions
from qwen_tray.ui import theme
from qwen_tray.ui.popup import DEMO_NOTE, AnswerPopup, PopupSettings

PRESETS = ["Describe", "Extract text", "Explain this error", "Translate to English"]
ANSWER_KEYS = {"fg", "bg", "code_bg", "code_fg", "muted", "accent", "select_bg"}


def open_popup(root: tk.Tk, submitter: object, max_new_tokens: int = 40, mode: str = "light") -> AnswerPopup:
    settings = PopupSettings(presets=PRESETS, options=GenerationOptions(max_new_tokens=max_new_tokens), theme=mode)
    popup = AnswerPopup(root, submitter, Image.new("RGB", (640, 400), "white"), (200, 150, 640, 400),
                        (0, 0, 1920, 1080), settings)  # type: ignore[arg-type]
    pump(root, lambda: popup.win.focus_get() is popup.question, 10, "the question box to have focus")
    settle(root, 0.2)
    return popup


def xdo(root: tk.Tk, d: XvfbDisplay, *args: str) -> str:
    return run_while_pumping(root, ["xdotool", *args], d.env())


def click(root: tk.Tk, d: XvfbDisplay, widget: tk.Misc) -> None:
    root.update_idletasks()  # geometry work still pending while a stream keeps Tk busy
    x, y = widget.winfo_rootx() + widget.winfo_width() // 2, widget.winfo_rooty() + widget.winfo_height() // 2
    xdo(root, d, "mousemove", str(x), str(y), "click", "1")


def layout(popup: AnswerPopup) -> dict[str, tuple[int, int, int, int]]:
    """Every button's and the window's place and size, in screen pixels."""
    popup.win.update_idletasks()
    widgets = {"window": popup.win, "stop": popup.stop_button, "copy": popup.copy_button,
               "clear": popup.clear_button, "ask": popup.ask_button, "answer": popup.answer,
               "question": popup.question, **{f"preset {i}": b for i, b in enumerate(popup.preset_buttons)}}
    return {k: (w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()) for k, w in widgets.items()}


def enabled(button: tk.Misc) -> bool:
    return str(button.cget("state")) != "disabled"


# -- theme -----------------------------------------------------------------------------------------------------
def test_ui_theme_is_validated_and_resolves_against_the_system() -> None:
    assert parse_config({}).ui.theme == "auto"
    assert parse_config({"ui": {"theme": "dark"}}).ui.theme == "dark"
    with pytest.raises(ConfigError, match="ui.theme .* must be one of 'auto', 'light', 'dark'"):
        parse_config({"ui": {"theme": "dim"}})
    assert theme.resolve_mode("auto", lambda: "dark") == "dark"
    assert theme.resolve_mode("auto", lambda: None) == "light"  # unknown system setting: light
    assert theme.resolve_mode("light", lambda: "dark") == "light"  # forced
    for p in (theme.LIGHT, theme.DARK):
        assert set(p.answer_colours()) == ANSWER_KEYS  # what daemon/ui/answer_view.py takes


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_the_popup_is_drawn_light_or_dark_with_one_typeface(tk_root: tk.Tk, recorder: Recorder, mode: str) -> None:
    popup = open_popup(tk_root, recorder, mode=mode)
    try:
        assert popup.win.title() == "qwen-tray - Ask about the screen"
        # What is on screen: the window's background and the answer box, read back from the X server.
        x, y, w, h = popup.rect()
        shot = capture.region(capture.Rect(x, y, w, h)).image
        ax = popup.answer.winfo_rootx() - x + popup.answer.winfo_width() // 2
        ay = popup.answer.winfo_rooty() - y + popup.answer.winfo_height() // 2
        pal = theme.palette(mode)
        hexes = ["#{:02x}{:02x}{:02x}".format(*shot.getpixel(p)) for p in ((4, h // 2), (ax, ay))]
        assert hexes == [pal.bg, pal.surface], hexes  # Sun Valley's window colour; our answer box
        assert pal.mode == mode
        import sv_ttk

        assert sv_ttk.get_theme(tk_root) == mode
        # The question box is set in the answer's typeface (not monospace beside a proportional answer).
        q = tkinter.font.Font(root=tk_root, font=popup.question.cget("font")).actual("family")
        a = tkinter.font.Font(root=tk_root, font=popup.answer.cget("font")).actual("family")
        fixed = tkinter.font.nametofont("TkFixedFont", tk_root).actual("family")
        assert q == a and q != fixed
    finally:
        popup.close()


# -- fixed layout ------------------------------------------------------------------------------------------------
class Refusing:
    """A submitter that refuses with a very long reason (a daemon that is stopping says why at length)."""

    def submit(self, job: object) -> int:
        raise RuntimeError("the daemon is stopping because " + "a very long reason that goes on " * 12)

    def cancel(self, job: object) -> None:
        pass


def test_no_button_moves_between_states_and_the_status_stays_one_line(
        tk_root: tk.Tk, recorder: Recorder, ui_display: XvfbDisplay) -> None:
    popup = open_popup(tk_root, recorder, max_new_tokens=3000)
    try:
        line = tkinter.font.Font(root=tk_root, font=popup.status.cget("font")).metrics("linespace")
        seen = {"idle": layout(popup)}
        xdo(tk_root, ui_display, "type", "--delay", "5", "tell me everything")
        xdo(tk_root, ui_display, "key", "Return")
        pump(tk_root, lambda: popup.state == "streaming", 60, "the stream")
        settle(tk_root, 0.3)
        seen["streaming"] = layout(popup)
        click(tk_root, ui_display, popup.stop_button)
        pump(tk_root, lambda: popup.state == "stopped", 60, "the stop")
        settle(tk_root, 0.2)
        seen["stopped"] = layout(popup)
        assert popup.note_text == DEMO_NOTE  # the demo warning is showing
        popup._settings.options = GenerationOptions(max_new_tokens=20)
        xdo(tk_root, ui_display, "key", "Return")
        pump(tk_root, lambda: popup.state == "done", 60, "the answer")
        settle(tk_root, 0.2)
        seen["done + demo warning"] = layout(popup)
        popup._submitter = Refusing()  # type: ignore[assignment]
        xdo(tk_root, ui_display, "key", "Return")
        assert popup.state == "error"
        settle(tk_root, 0.2)
        seen["error, long message"] = layout(popup)
        for state, places in seen.items():
            assert places == seen["idle"], f"{state}: {places} != {seen['idle']}"
        # The long error is cut to one line with "…"; the whole text is in the tooltip under the pointer.
        assert popup.status.winfo_height() < 2 * line
        shown = str(popup.status.cget("text"))
        assert shown.endswith("\u2026") and len(shown) < len(popup.status_text)
        assert popup.status_text.startswith("Could not ask: the daemon is stopping")
        xdo(tk_root, ui_display, "mousemove", str(popup.status.winfo_rootx() + 20), str(popup.status.winfo_rooty() + 5))
        pump(tk_root, lambda: popup._status_tip.win is not None, 10, "the tooltip")
        tip = popup._status_tip.win
        assert tip is not None and tip.winfo_children()[0].cget("text") == popup.status_text
    finally:
        popup.close()


# -- copy and the demo note ------------------------------------------------------------------------------------
def test_copy_waits_for_an_answer_and_copied_leaves_the_demo_note(tk_root: tk.Tk, recorder: Recorder,
                                                                   ui_display: XvfbDisplay) -> None:
    popup = open_popup(tk_root, recorder)
    try:
        assert not enabled(popup.copy_button)  # nothing to copy yet
        tk_root.clipboard_clear()
        tk_root.clipboard_append("what was there before")
        click(tk_root, ui_display, popup.copy_button)
        assert "Copied" not in popup.status_text
        got = run_while_pumping(tk_root, ["xclip", "-o", "-selection", "clipboard"], ui_display.env())
        assert got == "what was there before"
        assert popup._placeholder.winfo_ismapped()  # the empty box says what it is for
        xdo(tk_root, ui_display, "type", "what is it?")
        settle(tk_root, 0.1)
        assert not popup._placeholder.winfo_ismapped()  # gone while there is text
        xdo(tk_root, ui_display, "key", "Return")
        settle(tk_root, 0.1)
        assert popup._placeholder.winfo_ismapped()  # the box is empty again
        pump(tk_root, lambda: popup.state == "done", 60, "the answer")
        assert enabled(popup.copy_button)
        assert popup.note_text == DEMO_NOTE
        click(tk_root, ui_display, popup.copy_button)
        answer = popup._turns[-1].answer
        assert popup.status_text == f"Copied {len(answer)} characters."
        assert popup.note_text == DEMO_NOTE and str(popup.note.cget("text")).startswith("Demo model")
        got = run_while_pumping(tk_root, ["xclip", "-o", "-selection", "clipboard"], ui_display.env())
        assert got == answer
        popup.clear()
        assert not enabled(popup.copy_button)
    finally:
        popup.close()


# -- the question stays in view --------------------------------------------------------------------------------
def test_the_question_stays_in_view_when_a_long_answer_ends(tk_root: tk.Tk, recorder: Recorder,
                                                            ui_display: XvfbDisplay) -> None:
    popup = open_popup(tk_root, recorder, max_new_tokens=700)
    try:
        xdo(tk_root, ui_display, "type", "--delay", "5", "a long answer please")
        xdo(tk_root, ui_display, "key", "Return")
        pump(tk_root, lambda: popup.state in ("done", "error"), 120, "the answer")
        assert popup.state == "done", popup.status_text
        settle(tk_root, 0.2)
        t = popup.answer
        assert t.yview()[1] < 1.0 or t.yview()[0] > 0.0, "the answer fits the box: the test shows nothing"
        first = t.index("@0,0")
        assert t.get(f"{first} linestart", f"{first} lineend").startswith("\u203a a long answer please")
        assert t.bbox("last_question") is not None
    finally:
        popup.close()


def test_auto_follows_the_systems_dark_setting(tk_root: tk.Tk, recorder: Recorder, tmp_path: object,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """GNOME's setting, written with the real gsettings (a private keyfile backend), is what `auto` follows."""
    import subprocess

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("GSETTINGS_BACKEND", "keyfile")

    def system(scheme: str) -> None:
        subprocess.run(["gsettings", "set", "org.gnome.desktop.interface", "color-scheme", scheme], check=True,
                       timeout=30)

    system("prefer-dark")
    assert theme.resolve_mode("auto") == "dark"
    popup = open_popup(tk_root, recorder, mode="auto")
    assert popup.palette is theme.DARK
    popup.close()
    system("default")  # the user switches back: the next popup is light
    popup = open_popup(tk_root, recorder, mode="auto")
    assert popup.palette is theme.LIGHT
    import sv_ttk

    assert sv_ttk.get_theme(tk_root) == "light"
    popup.close()
