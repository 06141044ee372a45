"""The command line as a person meets it every day: help, exit codes, pipes, files, images, the demo marker."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from conftest import qwen_tray_cmd, subprocess_env
from PIL import Image

from qwen_tray.paths import default_paths


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*qwen_tray_cmd(), *args], capture_output=True, text=True, env=subprocess_env(),
                          timeout=timeout)


def into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader is already gone (`| head` that has finished): every write fails."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([*qwen_tray_cmd(), *args], stdout=w, stderr=subprocess.PIPE, text=True,
                              env=subprocess_env(), timeout=120)
    finally:
        os.close(w)


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels in a few dozen bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


class Daemon:
    """`qwen-tray run --headless` with the demo model, in a child process."""

    def __init__(self, log: Path) -> None:
        self._log = log.open("w")
        self.proc = subprocess.Popen([*qwen_tray_cmd(), "run", "--headless"], env=subprocess_env(),
                                     stdout=subprocess.DEVNULL, stderr=self._log)
        conn = default_paths().connection_file
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            if conn.exists() and cli("status").returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"the daemon did not start: {log.read_text()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def daemon(tmp_path: Path):
    d = Daemon(tmp_path / "daemon.log")
    yield d
    d.close()


# ---------------------------------------------------------------- without a daemon


def test_bare_command_prints_help() -> None:
    r = cli()
    assert r.returncode == 0 and r.stdout.startswith("usage: qwen-tray") and "status" in r.stdout and not r.stderr


def test_stop_without_a_daemon_exits_3() -> None:
    r = cli("stop")
    assert r.returncode == 3 and "not running" in r.stderr


def test_a_config_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "typo.toml"
    for args in (["config"], ["status"], ["logs"], ["autostart", "status"]):
        r = cli("--config", str(missing), *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert f"--config {missing}: does not exist" in r.stderr and "Traceback" not in r.stderr


def test_device_and_backend_without_model_are_refused_with_a_sentence() -> None:
    r = cli("ask", "--device", "CPU", "hello")
    assert r.returncode == 2 and "--device only apply with --model" in r.stderr and "model.device" in r.stderr
    r = cli("ask", "--backend", "optimum", "--device", "CPU", "hello")
    assert r.returncode == 2 and "--device and --backend only apply with --model" in r.stderr


def test_config_and_help_into_a_closed_pipe_end_quietly() -> None:
    for args in (["config"], ["config", "--json"], ["autostart", "status"], ["logs", "--path"]):
        r = into_closed_pipe(*args)
        assert r.returncode == 0 and r.stderr == "", (args, r.stderr)


def test_logs_prints_the_last_lines(isolated_user_dirs: Path) -> None:
    log = default_paths().log_file
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(f"line {i}\n" for i in range(1, 31)))
    r = cli("logs", "-n", "3")
    assert r.returncode == 0 and r.stdout == "line 28\nline 29\nline 30\n"
    r = cli("logs")
    assert r.returncode == 0 and r.stdout.splitlines() == [f"line {i}" for i in range(21, 31)]
    r = cli("logs", "--path")
    assert r.stdout.strip() == str(log)


@pytest.mark.parametrize(("size", "expected"), [
    ((12000, 12000), "is 12000x12000 (144.0 megapixels), over the limit of 67.1 megapixels (image.max_pixels): "
                     "scale it down first"),
    ((30000, 30000), "has too many pixels to open safely: scale it down first"),
])
def test_a_huge_image_is_refused_with_a_hint_and_no_pillow_warning(tmp_path: Path, tiny_model: Path,
                                                                     size: tuple[int, int], expected: str) -> None:
    big = tmp_path / "huge.png"
    big.write_bytes(png_header_only(*size))
    for args in (["ask", "--image", str(big), "what?"],  # checked before the daemon is even looked for
                 ["ask", "--model", str(tiny_model), "--image", str(big), "what?"]):
        r = cli(*args)
        assert r.returncode == 2, r.stderr
        assert f"{big} {expected}" in r.stderr
        assert "DecompressionBomb" not in r.stderr and "Traceback" not in r.stderr


def test_a_long_thin_image_is_refused_up_front(tmp_path: Path, tiny_model: Path) -> None:
    strip = tmp_path / "strip.png"
    Image.new("RGB", (20000, 50), (10, 20, 30)).save(strip)
    r = cli("ask", "--model", str(tiny_model), "--image", str(strip), "what?")
    assert r.returncode == 2, r.stderr
    assert f"{strip} is 20000x50: one side is 400 times the other" in r.stderr
    assert "crop it" in r.stderr and "Absolute aspect ratio" not in r.stderr


def test_ask_in_process_marks_the_demo_model(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWEN_TRAY_DEMO_MODEL", str(tiny_model))
    r = cli("ask", "--model", str(tiny_model), "--max-new-tokens", "4", "hello")
    assert r.returncode == 0, r.stderr
    assert "[demo model]" in r.stderr
    r = cli("ask", "--model", str(tiny_model), "--max-new-tokens", "4", "--json", "hello")
    assert json.loads(r.stdout)["demo"] is True


def test_ask_in_process_into_a_closed_pipe_ends_quietly(tiny_model: Path) -> None:
    r = into_closed_pipe("ask", "--model", str(tiny_model), "--max-new-tokens", "16", "hello")
    assert r.returncode == 0 and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


# ---------------------------------------------------------------- with the daemon


def test_daily_commands_against_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    r = cli("ask", "--max-new-tokens", "4", "hello")
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    assert "[demo model]" in r.stderr  # plain output says the demo answered, as the README promises

    for args in (["status"], ["status", "--json"], ["ask", "--max-new-tokens", "32", "hello"]):
        r = into_closed_pipe(*args)
        assert r.returncode == 0 and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, (args, r.stderr)

    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    r = cli("ask", "--image", str(good), "--image", str(notes), "what?")
    assert r.returncode == 2 and f"{notes} is not a PNG" in r.stderr
    assert "blob" not in r.stderr and "messages[" not in r.stderr

    strip = tmp_path / "strip.png"
    Image.new("RGB", (20000, 50)).save(strip)
    r = cli("ask", "--image", str(strip), "what?")
    assert r.returncode == 2 and "one side is 400 times the other" in r.stderr

    # Ctrl+C mid-answer: one line on stderr, exit 130, and the daemon stops generating (it is idle again).
    proc = subprocess.Popen([*qwen_tray_cmd(), "ask", "--max-new-tokens", "3000", "hello"], env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(1)  # the answer is streaming
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"qwen-tray: cancelled" in err and b"Traceback" not in err, err
    deadline = time.monotonic() + 30
    while json.loads(cli("status", "--json").stdout)["state"] != "ready":
        assert time.monotonic() < deadline, "the daemon kept generating for a client that left"
        time.sleep(0.2)

    r = cli("status")  # the daemon is unharmed by all of that
    assert r.returncode == 0 and "ready" in r.stdout, r.stderr
    from qwen_tray.paths import bundled_model_dir

    assert f"  path:      {bundled_model_dir()}\n" in r.stdout  # which folder is served
    assert json.loads(cli("status", "--json").stdout)["model_path"] == str(bundled_model_dir())


def test_control_characters_from_the_model_are_shown_not_obeyed(capsys: pytest.CaptureFixture[str]) -> None:
    from qwen_tray.commands.ask_cmd import _write
    from qwen_tray.safetext import printable

    noise = "a\x10b\x12c\x18d\x1b[31mred\x07\r\x7f\x9b2J\tok\n"
    assert printable(noise) == "a\u2410b\u2412c\u2418d\u241b[31mred\u2407\u240d\u2421\ufffd2J\tok\n"
    _write(noise)
    out = capsys.readouterr().out
    assert out == printable(noise)
    assert not any(ord(c) < 0x20 and c not in "\n\t" for c in out)


def test_the_python_m_entry_point_is_the_same_cli() -> None:
    r = subprocess.run([sys.executable, "-m", "qwen_tray", "--version"], capture_output=True, text=True,
                       env=subprocess_env(), timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("qwen-tray ")
