"""The daemon's lifecycle as a user's commands see it: `stop` waits for the process, a refused second `run`
leaves the log honest, a dead IPC thread ends the daemon with status 1 instead of a daemon that looks alive.

Each daemon is a real `python -m qwen_tray run` child process (a small prelude injects the fault or the slow exit
a test needs, without any test hook in the product).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import qwen_tray_cmd, subprocess_env
from servicetools import wait_for

from qwen_tray.paths import default_paths
from qwen_tray_client.client import Client, DaemonTimeout


def start_daemon(tmp_path: Path, prelude: str = "", *args: str, env: dict[str, str] | None = None
                 ) -> tuple[subprocess.Popen, Path]:
    code = prelude + "\nimport sys\nfrom qwen_tray.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    log = tmp_path / f"daemon-{time.monotonic_ns()}.err"
    proc = subprocess.Popen([sys.executable, "-c", code, "run", *(args or ("--headless",))],
                            env=env or subprocess_env(), stdout=subprocess.DEVNULL, stderr=log.open("w"))
    return proc, log


def wait_ready(proc: subprocess.Popen, log: Path) -> Path:
    conn = default_paths().connection_file

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            if json.loads(conn.read_text())["pid"] != proc.pid:
                return False
            with Client(conn, timeout=5) as client:
                return client.status()["state"] == "ready"
        except (OSError, ValueError, KeyError, DaemonTimeout):
            return False

    assert wait_for(ready, timeout=60, interval=0.2), log.read_text()
    return conn


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(qwen_tray_cmd() + list(args), capture_output=True, text=True, timeout=90,
                          env=env or subprocess_env())


SLOW_EXIT = "import atexit, time\natexit.register(time.sleep, 3)  # a slow unload after the sockets closed\n"


def test_stop_returns_only_once_the_process_has_exited(tmp_path: Path) -> None:
    proc, log = start_daemon(tmp_path, SLOW_EXIT)
    try:
        conn = wait_ready(proc, log)
        r = cli("stop")
        assert r.returncode == 0 and f"stopped (pid {proc.pid})" in r.stdout, r.stderr
        assert proc.poll() == 0, "`qwen-tray stop` returned while the daemon was still running"
        assert not conn.exists()
    finally:
        proc.kill()
        proc.wait()


def test_stop_gives_up_after_its_timeout_with_a_clear_message(tmp_path: Path) -> None:
    proc, log = start_daemon(tmp_path, SLOW_EXIT)
    try:
        wait_ready(proc, log)
        r = cli("stop", "--timeout", "0.5")
        assert r.returncode == 1
        assert f"pid {proc.pid}" in r.stderr and "still running after 0.5 s" in r.stderr and "kill" in r.stderr
        assert proc.wait(30) == 0  # it was stopping all along
    finally:
        proc.kill()
        proc.wait()


def test_a_refused_second_run_writes_nothing_that_reads_like_a_stop(tmp_path: Path) -> None:
    first, log = start_daemon(tmp_path)
    try:
        wait_ready(first, log)
        shared_log = default_paths().log_file
        before = shared_log.read_text()
        env = {k: v for k, v in subprocess_env().items() if k != "DISPLAY"}  # the desktop entry, headless
        r = cli("run", env=env)
        assert r.returncode == 1 and "already running" in r.stderr
        added = shared_log.read_text()[len(before):]
        assert "refused" in added
        for phrase in ("shutting down", "stopped", "stopping", "unloading"):
            assert phrase not in added, added
        with Client(default_paths().connection_file) as client:
            assert client.ping() < 5  # and the first one serves on
    finally:
        first.terminate()
        first.wait(30)


BROKEN_SERVER = """
import qwen_tray.ipc_server
def broken(self, router, batch=64):
    raise RuntimeError("a bug in the server loop")
qwen_tray.ipc_server.Server._drain_requests = broken
"""


def test_a_dead_ipc_thread_ends_the_daemon_with_status_1_and_no_connection_file(tmp_path: Path) -> None:
    proc, log = start_daemon(tmp_path, BROKEN_SERVER)
    try:
        conn = default_paths().connection_file
        assert wait_for(lambda: conn.exists() or proc.poll() is not None, timeout=60), log.read_text()
        info = json.loads(conn.read_text())
        assert info["pid"] == proc.pid
        # the first request reaches the broken loop
        with Client(conn, timeout=2) as client, contextlib.suppress(DaemonTimeout):
            client.ping()
        assert proc.wait(30) == 1
        assert not conn.exists()
        text = default_paths().log_file.read_text()
        assert "the local API failed (RuntimeError: a bug in the server loop)" in text
        assert "exit status 1" in text
        r = cli("status")
        assert r.returncode == 3 and "not running" in r.stderr
    finally:
        proc.kill()
        proc.wait()
