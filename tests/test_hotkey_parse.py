"""One hotkey parser for every backend, and its translations (X11, Win32, the keyboard package)."""

from __future__ import annotations

import pytest
from Xlib import XK

from qwen_tray.hotkey import resolve_backend
from qwen_tray.hotkey.base import HotkeyUnavailable
from qwen_tray.hotkey.parse import (
    FUNCTION_KEYS,
    KEY_ALIASES,
    MOD_NOREPEAT,
    Hotkey,
    HotkeyError,
    parse_hotkey,
    to_keyboard,
    to_win32,
    to_x11,
)


@pytest.mark.parametrize(
    ("text", "mods", "key"),
    [
        ("ctrl+alt+q", {"ctrl", "alt"}, "q"),
        ("  Ctrl + ALT + Q ", {"ctrl", "alt"}, "q"),
        ("control+shift+f5", {"ctrl", "shift"}, "f5"),
        ("win+shift+s", {"super", "shift"}, "s"),
        ("alt+Escape", {"alt"}, "esc"),
        ("ctrl+alt+PgUp", {"ctrl", "alt"}, "pageup"),
        ("ctrl+alt+-", {"ctrl", "alt"}, "minus"),
        ("printscreen", set(), "printscreen"),
        ("shift+f12", {"shift"}, "f12"),
        ("super+1", {"super"}, "1"),
    ],
)
def test_parse_accepts(text: str, mods: set[str], key: str) -> None:
    hk = parse_hotkey(text)
    assert hk == Hotkey(frozenset(mods), key)
    assert parse_hotkey(str(hk)) == hk  # the canonical string round-trips


def test_canonical_string_has_fixed_modifier_order() -> None:
    assert str(parse_hotkey("q+alt+ctrl")) == "ctrl+alt+q"
    assert str(parse_hotkey("super+shift+alt+control+f1")) == "ctrl+alt+shift+super+f1"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("ctrl++q", "empty part"),
        ("ctrl+alt+", "empty part"),
        ("+q", "empty part"),
        ("ctrl+hyper+q", "unknown key or modifier 'hyper'"),
        ("ctrl+alt+qq", "unknown key or modifier 'qq'"),
        ("ctrl+alt+f25", "unknown key or modifier 'f25'"),
        ("ctrl+control+q", "modifier 'ctrl' twice"),
        ("ctrl+alt+q+q", "key 'q' twice"),
        ("ctrl+alt", "only modifiers"),
        ("ctrl+a+b", "more than one key"),
        ("q", "ordinary typing"),
        ("shift+q", "ordinary typing"),
    ],
)
def test_parse_rejects_with_clear_reason(text: str, reason: str) -> None:
    with pytest.raises(HotkeyError, match=reason.replace("+", r"\+")):
        parse_hotkey(text)


def test_parse_rejects_non_string() -> None:
    with pytest.raises(HotkeyError):
        parse_hotkey(None)  # type: ignore[arg-type]


def _every_key() -> list[str]:
    keys = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)] + list(FUNCTION_KEYS)
    return keys + sorted(set(KEY_ALIASES.values()))


def test_x11_translation() -> None:
    combo = to_x11(parse_hotkey("ctrl+alt+q"))
    assert combo.mask == 0x04 | 0x08 and combo.keysym_name == "q" and combo.keysym == XK.XK_q
    assert to_x11(parse_hotkey("shift+super+f1")).mask == 0x01 | 0x40
    assert to_x11(parse_hotkey("ctrl+enter")).keysym_name == "Return"
    # Every key we accept names a real keysym, and our hard-coded value is python-xlib's.
    for key in _every_key():
        combo = to_x11(parse_hotkey(f"ctrl+{key}"))
        assert XK.string_to_keysym(combo.keysym_name) == combo.keysym, key


def test_win32_translation() -> None:
    combo = to_win32(parse_hotkey("ctrl+alt+q"))
    assert combo.modifiers == 0x0002 | 0x0001 | MOD_NOREPEAT and combo.vk == ord("Q")
    assert to_win32(parse_hotkey("win+shift+s"), norepeat=False).modifiers == 0x0008 | 0x0004
    expected_vk = {"1": 0x31, "f1": 0x70, "f12": 0x7B, "f24": 0x87, "printscreen": 0x2C, "pageup": 0x21,
                   "pagedown": 0x22, "esc": 0x1B, "space": 0x20, "left": 0x25, "down": 0x28, "minus": 0xBD,
                   "equal": 0xBB, "grave": 0xC0, "delete": 0x2E}  # fmt: skip
    for key, vk in expected_vk.items():
        assert to_win32(parse_hotkey(f"ctrl+{key}")).vk == vk, key
    vks = {to_win32(parse_hotkey(f"ctrl+{k}")).vk for k in _every_key()}
    assert len(vks) == len(_every_key())  # no two keys collapse onto one VK code


def test_keyboard_package_translation() -> None:
    assert to_keyboard(parse_hotkey("ctrl+alt+q")) == "ctrl+alt+q"
    assert to_keyboard(parse_hotkey("q+win+ctrl")) == "ctrl+windows+q"
    assert to_keyboard(parse_hotkey("ctrl+alt+pgdn")) == "ctrl+alt+page down"
    assert to_keyboard(parse_hotkey("ctrl+alt+,")) == "ctrl+alt+comma"  # "," separates steps in its syntax
    for key in _every_key():
        text = to_keyboard(parse_hotkey(f"ctrl+{key}"))
        assert "," not in text and text.count("+") == 1, text


def test_backend_choice_per_platform() -> None:
    assert resolve_backend("auto", "win32") == "registerhotkey"
    assert resolve_backend("auto", "linux") == "xlib"
    assert resolve_backend("keyboard", "win32") == "keyboard"
    with pytest.raises(HotkeyUnavailable, match="Windows only"):
        resolve_backend("registerhotkey", "linux")
    with pytest.raises(HotkeyUnavailable, match="Windows only"):
        resolve_backend("keyboard", "linux")
    with pytest.raises(HotkeyUnavailable, match="needs X11"):
        resolve_backend("xlib", "win32")
    with pytest.raises(HotkeyUnavailable, match="unknown hotkey backend"):
        resolve_backend("evdev", "linux")


def test_config_rejects_bad_hotkeys_clearly() -> None:
    from qwen_tray.config import ConfigError, parse_config

    cfg = parse_config({"hotkey": {"ask_screen": "Ctrl+Alt+S", "backend": "xlib"}})
    assert cfg.hotkey.ask_screen == "Ctrl+Alt+S"
    with pytest.raises(ConfigError, match=r"hotkey.ask_region in my.toml: .*unknown key or modifier 'hyper'"):
        parse_config({"hotkey": {"ask_region": "ctrl+hyper+r"}}, "my.toml")
    with pytest.raises(ConfigError, match="same combination"):
        parse_config({"hotkey": {"ask_screen": "alt+ctrl+r", "ask_region": "ctrl+alt+r"}})
    off = parse_config({"hotkey": {"ask_region": ""}})  # an empty string turns that hotkey off
    assert off.hotkey.ask_region == ""
    with pytest.raises(ConfigError, match="hotkey.backend .* must be one of auto, registerhotkey, keyboard, xlib"):
        parse_config({"hotkey": {"backend": "evdev"}})
