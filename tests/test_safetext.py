"""Model (and other untrusted) text on the terminal and the clipboard: control characters, ESC sequences and
bidi overrides are shown as visible text on every CLI print path, and copies leave them out."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

from conftest import qwen_tray_cmd, subprocess_env

from qwen_tray.logs import setup_logging
from qwen_tray.paths import default_paths
from qwen_tray.safetext import clean, printable, visible

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def raw_controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 or c in BIDI]


def test_bidi_overrides_are_shown_and_copies_leave_controls_out() -> None:
    evil = "ok \u202eexe.txt\u202c \x1b[2J\x10\r\nnext\rline \x9b"
    assert printable(evil) == "ok <U+202E>exe.txt<U+202C> \u241b[2J\u2410\u240d\nnext\u240dline \ufffd"
    assert visible(evil) == "ok <U+202E>exe.txt<U+202C> \\x1b[2J\\x10\\x0d\nnext\\x0dline \\x9b"
    assert clean(evil) == "ok exe.txt [2J\nnext\nline "
    for f in (printable, visible, clean):
        assert raw_controls(f(evil + BIDI + "".join(map(chr, range(0x20))))) == [], f


def test_every_cli_print_path_shows_untrusted_text_safely(tiny_model: Path, tmp_path: Path) -> None:
    env = subprocess_env()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*qwen_tray_cmd(), *args], capture_output=True, text=True, env=env, timeout=180)

    # The tiny model's answers hold control characters (\x04 here): streamed, and in --json.
    streamed = cli("ask", "--model", str(tiny_model), "--max-new-tokens", "60", "hello")
    assert streamed.returncode == 0, streamed.stderr
    assert "\u2404" in streamed.stdout and raw_controls(streamed.stdout + streamed.stderr) == []
    as_json = cli("ask", "--model", str(tiny_model), "--max-new-tokens", "60", "--json", "hello")
    assert as_json.returncode == 0 and raw_controls(as_json.stdout) == []
    assert "\x04" in json.loads(as_json.stdout)["text"]  # the JSON carries the real text, escaped

    # An error that quotes a file name.
    bad = cli("ask", "--model", str(tiny_model), "--image", str(tmp_path / "x\x1b[2J\u202ey.png"), "q")
    assert bad.returncode != 0 and "x\u241b[2J<U+202E>y.png" in bad.stderr and raw_controls(bad.stderr) == []

    # The log (questions land there at DEBUG): `logs` prints it, and `logs -f` goes through the same writer.
    log_file = default_paths().log_file
    setup_logging(log_file, "INFO", stderr=False)
    try:
        logging.getLogger("test").info("question: %s", "hi \x1b]0;pwned\x07 \u202eevil")
    finally:
        setup_logging(None, "WARNING", stderr=False)
    logs = cli("logs", "-n", "5")
    assert logs.returncode == 0 and "hi \u241b]0;pwned\u2407 <U+202E>evil" in logs.stdout
    assert raw_controls(logs.stdout) == []
