"""Model text made safe to show: control characters become visible symbols instead of acting.

Why: a model's output is untrusted bytes for a terminal or a text widget. The tiny demo
model emits `\\x10`, `\\x12`, `\\x18`; a real one could emit ESC sequences that recolour,
retitle or rewrite the user's terminal. Newline and tab stay; every other C0 control and
DEL becomes its Unicode "control picture" (U+2400 block, e.g. U+2410 for \\x10), and C1
controls (U+0080-U+009F, which some terminals obey like ESC [) become U+FFFD.
"""

from __future__ import annotations

_KEEP = {"\n", "\t"}
_TABLE = {c: 0x2400 + c for c in range(0x20) if chr(c) not in _KEEP}
_TABLE[0x7F] = 0x2421
_TABLE.update({c: 0xFFFD for c in range(0x80, 0xA0)})


def printable(text: str) -> str:
    """`text` with control characters replaced by visible symbols (newline and tab kept)."""
    return text.translate(_TABLE)
