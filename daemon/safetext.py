"""Model text made safe to show: control characters become visible symbols instead of acting.

Why: a model's output is untrusted bytes for a terminal or a text widget. The tiny demo
model emits `\\x10`, `\\x12`, `\\x18`; a real one could emit ESC sequences that recolour,
retitle or rewrite the user's terminal, or bidirectional overrides that make shown text
read differently from what it is ("Trojan Source"). Newline and tab stay; every other C0
control and DEL becomes its Unicode "control picture" (U+2400 block, e.g. U+2410 for \\x10),
C1 controls (U+0080-U+009F, which some terminals obey like ESC [) become U+FFFD, and the
bidi embedding/override/isolate controls become a visible `<U+202E>`.

`printable` is for a terminal; `visible` is for the popup, whose fonts may draw control pictures as
empty boxes (DejaVu Sans does): it writes `\x10` instead, and `CONTROLS` finds the characters so the
popup can set them apart. `clean` is for copying (the popup's Copy buttons): the model's
text minus those characters, so a paste into a terminal cannot carry an escape sequence.
"""

from __future__ import annotations

import re

_KEEP = {"\n", "\t"}
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]  # LRE RLE PDF LRO RLO, LRI RLI FSI PDI
_TABLE: dict[int, int | str] = {c: 0x2400 + c for c in range(0x20) if chr(c) not in _KEEP}
_TABLE[0x7F] = 0x2421
_TABLE.update({c: 0xFFFD for c in range(0x80, 0xA0)})
_TABLE.update({c: f"<U+{c:04X}>" for c in _BIDI})
_DROP: dict[int, None] = {c: None for c in _TABLE}
CONTROLS = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_TABLE)) + "]")


def printable(text: str) -> str:
    """`text` with control characters replaced by visible symbols (newline and tab kept)."""
    return text.translate(_TABLE)


def clean(text: str) -> str:
    """`text` without the characters `printable` replaces (CR LF and a lone CR become a newline first)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_DROP)


def escape(char: str) -> str:
    """One such character as text: `\\x10` (C0, DEL, C1) or `<U+202E>` (bidi controls)."""
    c = ord(char)
    return f"\\x{c:02x}" if c < 0x100 else f"<U+{c:04X}>"


def visible(text: str) -> str:
    """`text` with each control character written as `escape` writes it (newline and tab kept)."""
    return CONTROLS.sub(lambda m: escape(m.group()), text)
