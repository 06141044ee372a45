"""`qwen-tray logs`: the path it prints is the daemon's log file, and -f follows it across rotation."""

from __future__ import annotations

import io
import logging
import logging.handlers
import queue
import subprocess
import threading
import time
from pathlib import Path

from conftest import qwen_tray_cmd, subprocess_env

from qwen_tray.commands.logs_cmd import follow, tail_start
from qwen_tray.logs import setup_logging
from qwen_tray.paths import default_paths


class Sink(io.StringIO):
    """A stdout stand-in another thread can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def flush(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        with self.changed:
            while text not in self.getvalue():
                left = deadline - time.monotonic()
                assert left > 0, f"{text!r} never arrived; got {self.getvalue()!r}"
                self.changed.wait(left)
        return self.getvalue()


def test_logs_prints_the_file_setup_logging_writes(isolated_user_dirs: Path) -> None:
    res = subprocess.run([*qwen_tray_cmd(), "logs", "--path"], capture_output=True, text=True, env=subprocess_env(),
                         timeout=60)
    assert res.returncode == 0
    printed = Path(res.stdout.strip())
    assert printed == default_paths().log_file
    assert str(isolated_user_dirs) in str(printed)  # the per-user dir, isolated here
    res = subprocess.run([*qwen_tray_cmd(), "logs"], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert res.returncode == 0 and res.stdout == "" and f"no log yet at {printed}" in res.stderr
    setup_logging(printed, "INFO", stderr=False)
    try:
        logging.getLogger("test").info("hello from the daemon")
    finally:
        setup_logging(None, "WARNING", stderr=False)
    assert "hello from the daemon" in printed.read_text()


def test_tail_start_finds_the_last_lines(tmp_path: Path) -> None:
    f = tmp_path / "x.log"
    f.write_bytes(b"".join(b"line %d\n" % i for i in range(5000)))
    data = f.read_bytes()
    assert data[tail_start(f, 3):] == b"line 4997\nline 4998\nline 4999\n"
    assert tail_start(f, 0) == len(data)
    assert tail_start(f, 10_000) == 0
    f.write_bytes(b"a\nb")  # no final newline: "b" is the last line
    assert f.read_bytes()[tail_start(f, 1):] == b"b"


def test_follow_keeps_every_line_across_rotation(tmp_path: Path) -> None:
    log = tmp_path / "qwen-tray.log"
    log.write_text("old 1\nold 2\nold 3\n")
    handler = logging.handlers.RotatingFileHandler(log, maxBytes=400, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("rotation-test")
    logger.propagate = False
    logger.addHandler(handler)
    out, stop = Sink(), threading.Event()
    t = threading.Thread(target=follow, args=(log, out, 2, stop, 0.02), daemon=True)
    t.start()
    try:
        out.wait_for("old 3\n")
        for i in range(60):  # about 3 KB: several rotations while following
            logger.warning("message %03d", i)
            if i % 7 == 0:
                time.sleep(0.05)
        out.wait_for("message 059\n")
    finally:
        stop.set()
        t.join(5)
        logger.removeHandler(handler)
        handler.close()
    got = out.getvalue().splitlines()
    assert got[:2] == ["old 2", "old 3"]
    assert got[2:] == [f"message {i:03d}" for i in range(60)]  # none lost, none twice, in order
    assert log.with_name("qwen-tray.log.1").exists()  # rotation really happened


def test_follow_waits_for_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    out, stop = Sink(), threading.Event()
    t = threading.Thread(target=follow, args=(log, out, 10, stop, 0.02), daemon=True)
    t.start()
    try:
        time.sleep(0.1)
        log.write_text("first line\n")
        out.wait_for("first line\n")
        log.write_text("")  # truncated in place
        time.sleep(0.1)
        with log.open("a") as f:
            f.write("after truncation\n")
        out.wait_for("after truncation\n")
    finally:
        stop.set()
        t.join(5)


def test_cli_follow_streams_new_lines(isolated_user_dirs: Path) -> None:
    log = default_paths().log_file
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"early {i}\n" for i in range(20)))
    proc = subprocess.Popen([*qwen_tray_cmd(), "logs", "-f", "-n", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env())
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        assert lines.get(timeout=60) == "early 18\n"
        assert lines.get(timeout=20) == "early 19\n"
        with log.open("a") as f:
            f.write("fresh line\n")
        assert lines.get(timeout=20) == "fresh line\n"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
