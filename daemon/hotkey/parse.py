"""Hotkey strings such as ``ctrl+alt+q``: parsed once, the same for every backend.

Why one parser: the config is written once and must mean the same thing on Windows and X11, and a typo must
be a clear config error at start-up, not a hotkey that silently never fires. The per-backend translations
(X11 modifier mask + keysym, Win32 MOD_* + virtual-key code, the ``keyboard`` package's string) live here
too, as plain tables, so they can be tested on any platform without the platform's libraries.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

BACKENDS = ("auto", "registerhotkey", "keyboard", "xlib")  # config hotkey.backend
MODIFIERS = ("ctrl", "alt", "shift", "super")  # canonical names, in display order
MODIFIER_ALIASES = {
    "ctrl": "ctrl", "control": "ctrl", "ctl": "ctrl",
    "alt": "alt", "option": "alt",
    "shift": "shift",
    "super": "super", "win": "super", "windows": "super", "cmd": "super", "command": "super",
}  # fmt: skip

# Canonical non-letter/digit/F-key names -> (X11 keysym name, X11 keysym, Win32 VK, keyboard-package name).
_NAMED: dict[str, tuple[str, int, int, str]] = {
    "space": ("space", 0x0020, 0x20, "space"),
    "enter": ("Return", 0xFF0D, 0x0D, "enter"),
    "tab": ("Tab", 0xFF09, 0x09, "tab"),
    "esc": ("Escape", 0xFF1B, 0x1B, "esc"),
    "backspace": ("BackSpace", 0xFF08, 0x08, "backspace"),
    "delete": ("Delete", 0xFFFF, 0x2E, "delete"),
    "insert": ("Insert", 0xFF63, 0x2D, "insert"),
    "home": ("Home", 0xFF50, 0x24, "home"),
    "end": ("End", 0xFF57, 0x23, "end"),
    "pageup": ("Prior", 0xFF55, 0x21, "page up"),
    "pagedown": ("Next", 0xFF56, 0x22, "page down"),
    "left": ("Left", 0xFF51, 0x25, "left"),
    "up": ("Up", 0xFF52, 0x26, "up"),
    "right": ("Right", 0xFF53, 0x27, "right"),
    "down": ("Down", 0xFF54, 0x28, "down"),
    "printscreen": ("Print", 0xFF61, 0x2C, "print screen"),
    "pause": ("Pause", 0xFF13, 0x13, "pause"),
    # Punctuation: the keyboard package splits on "+" and ",", so it gets the spelled-out names it knows.
    "minus": ("minus", 0x002D, 0xBD, "minus"),
    "equal": ("equal", 0x003D, 0xBB, "equal"),
    "comma": ("comma", 0x002C, 0xBC, "comma"),
    "period": ("period", 0x002E, 0xBE, "period"),
    "slash": ("slash", 0x002F, 0xBF, "slash"),
    "backslash": ("backslash", 0x005C, 0xDC, "backslash"),
    "semicolon": ("semicolon", 0x003B, 0xBA, "semicolon"),
    "apostrophe": ("apostrophe", 0x0027, 0xDE, "apostrophe"),
    "grave": ("grave", 0x0060, 0xC0, "grave"),
    "bracketleft": ("bracketleft", 0x005B, 0xDB, "bracketleft"),
    "bracketright": ("bracketright", 0x005D, 0xDD, "bracketright"),
}
KEY_ALIASES = {
    "return": "enter", "escape": "esc", "del": "delete", "ins": "insert", "bksp": "backspace",
    "pgup": "pageup", "prior": "pageup", "page_up": "pageup", "pgdn": "pagedown", "pgdown": "pagedown",
    "next": "pagedown", "page_down": "pagedown", "print": "printscreen", "prtsc": "printscreen",
    "prtscn": "printscreen", "print_screen": "printscreen", "snapshot": "printscreen", "break": "pause",
    "-": "minus", "=": "equal", ",": "comma", ".": "period", "/": "slash", "\\": "backslash",
    ";": "semicolon", "'": "apostrophe", "quote": "apostrophe", "`": "grave", "backtick": "grave",
    "[": "bracketleft", "]": "bracketright",
}  # fmt: skip
FUNCTION_KEYS = tuple(f"f{i}" for i in range(1, 25))
# Keys that may be a hotkey on their own (no modifier) without stealing ordinary typing.
_STANDALONE_OK = frozenset(FUNCTION_KEYS) | {"printscreen", "pause"}

# X11 core modifier masks (X.h) and Win32 RegisterHotKey flags (winuser.h).
X11_MASKS = {"shift": 1 << 0, "ctrl": 1 << 2, "alt": 1 << 3, "super": 1 << 6}  # ShiftMask, ControlMask, Mod1, Mod4
WIN32_MODS = {"alt": 0x0001, "ctrl": 0x0002, "shift": 0x0004, "super": 0x0008}  # MOD_ALT, _CONTROL, _SHIFT, _WIN
MOD_NOREPEAT = 0x4000  # holding the combination down fires once, not at the keyboard's repeat rate
KEYBOARD_MODS = {"ctrl": "ctrl", "alt": "alt", "shift": "shift", "super": "windows"}


class HotkeyError(ValueError):
    """A hotkey string that cannot be understood; the message says which part and why."""


@dataclass(frozen=True)
class Hotkey:
    """A parsed hotkey: canonical modifier names and one canonical key name."""

    modifiers: frozenset[str]
    key: str

    def __str__(self) -> str:
        return "+".join([m for m in MODIFIERS if m in self.modifiers] + [self.key])


@dataclass(frozen=True)
class X11Combo:
    """What XGrabKey needs (the keycode comes from the server's keyboard mapping at grab time)."""

    mask: int
    keysym_name: str
    keysym: int


@dataclass(frozen=True)
class Win32Combo:
    """What RegisterHotKey needs."""

    modifiers: int
    vk: int


def _canonical_key(part: str) -> str | None:
    part = KEY_ALIASES.get(part, part)
    if part in _NAMED or part in FUNCTION_KEYS:
        return part
    if len(part) == 1 and (part in string.ascii_lowercase or part in string.digits):
        return part
    return None


def parse_hotkey(text: str) -> Hotkey:
    """Parse ``"ctrl+alt+q"`` (case and spaces ignored) or raise HotkeyError with a clear reason."""
    if not isinstance(text, str) or not text.strip():
        raise HotkeyError("a hotkey must be a non-empty string such as 'ctrl+alt+q'")
    parts = [p.strip().lower() for p in text.split("+")]
    if any(not p for p in parts):
        raise HotkeyError(f"hotkey {text!r} has an empty part (write keys joined by single '+', e.g. 'ctrl+alt+q')")
    modifiers: set[str] = set()
    keys: list[str] = []
    for part in parts:
        if part in MODIFIER_ALIASES:
            mod = MODIFIER_ALIASES[part]
            if mod in modifiers:
                raise HotkeyError(f"hotkey {text!r} names the modifier {mod!r} twice")
            modifiers.add(mod)
            continue
        key = _canonical_key(part)
        if key is None:
            raise HotkeyError(
                f"hotkey {text!r}: unknown key or modifier {part!r} (modifiers: ctrl, alt, shift, super; keys: "
                "a-z, 0-9, f1-f24, space, enter, tab, esc, insert, delete, home, end, pageup, pagedown, arrows, "
                "printscreen, pause, punctuation)"
            )
        if key in keys:
            raise HotkeyError(f"hotkey {text!r} names the key {key!r} twice")
        keys.append(key)
    if not keys:
        raise HotkeyError(f"hotkey {text!r} has only modifiers; add one key, e.g. 'ctrl+alt+q'")
    if len(keys) > 1:
        raise HotkeyError(f"hotkey {text!r} has more than one key ({', '.join(keys)}); use one key plus modifiers")
    key = keys[0]
    if key not in _STANDALONE_OK and not (modifiers - {"shift"}):
        raise HotkeyError(
            f"hotkey {text!r} would take over ordinary typing; add ctrl, alt or super (only f1-f24, printscreen "
            "and pause may stand alone)"
        )
    return Hotkey(frozenset(modifiers), key)


def as_hotkey(value: Hotkey | str) -> Hotkey:
    """Accept a parsed Hotkey or a string (parsed here), so callers can pass config values straight in."""
    return value if isinstance(value, Hotkey) else parse_hotkey(value)


def to_x11(hotkey: Hotkey) -> X11Combo:
    """X11 modifier mask (Shift/Control/Mod1=Alt/Mod4=Super) and keysym for XGrabKey."""
    mask = 0
    for mod in hotkey.modifiers:
        mask |= X11_MASKS[mod]
    key = hotkey.key
    if key in _NAMED:
        name, keysym, _, _ = _NAMED[key]
    elif key in FUNCTION_KEYS:
        n = int(key[1:])
        name, keysym = f"F{n}", 0xFFBE + n - 1  # XK_F1 .. XK_F24 are consecutive
    else:
        name, keysym = key, ord(key)  # Latin-1 keysyms equal their code points (lower-case letters, digits)
    return X11Combo(mask, name, keysym)


def to_win32(hotkey: Hotkey, norepeat: bool = True) -> Win32Combo:
    """RegisterHotKey modifiers (MOD_*, with MOD_NOREPEAT by default) and virtual-key code."""
    mods = MOD_NOREPEAT if norepeat else 0
    for mod in hotkey.modifiers:
        mods |= WIN32_MODS[mod]
    key = hotkey.key
    if key in _NAMED:
        vk = _NAMED[key][2]
    elif key in FUNCTION_KEYS:
        vk = 0x70 + int(key[1:]) - 1  # VK_F1 .. VK_F24
    else:
        vk = ord(key.upper())  # 'A'..'Z' and '0'..'9' are their own VK codes
    return Win32Combo(mods, vk)


def to_keyboard(hotkey: Hotkey) -> str:
    """The ``keyboard`` package's hotkey string, e.g. ``ctrl+alt+q`` or ``ctrl+windows+page up``."""
    mods = [KEYBOARD_MODS[m] for m in MODIFIERS if m in hotkey.modifiers]
    key = _NAMED[hotkey.key][3] if hotkey.key in _NAMED else hotkey.key
    return "+".join([*mods, key])
