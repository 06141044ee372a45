"""`qwen-tray run --headless` as a real process: the CLI against it, one instance, kill -9, signals.

The daemon here runs the real tiny model unwrapped, so "mid-stream" uses a prompt
it answers at length: greedy decoding of "x" * 50 runs the whole max_new_tokens
(checked: 2000 tokens, a couple of seconds), and the test acts on the first token.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import qwen_tray_cmd, subprocess_env
from PIL import Image
from servicetools import wait_for

from qwen_tray.instance import AlreadyRunning, InstanceLock
from qwen_tray.paths import default_paths
from qwen_tray_client.client import Client, GenerationFailed
from qwen_tray_client.connection import read_connection_file

LONG_PROMPT = "x" * 50


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(qwen_tray_cmd() + list(args), capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env())


class Daemon:
    """`qwen-tray run --headless` in a child process; its log (stderr) goes to a file."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._log_fh = log.open("w")
        self.proc = subprocess.Popen(qwen_tray_cmd() + ["run", "--headless"], env=subprocess_env(),
                                     stdout=subprocess.DEVNULL, stderr=self._log_fh)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60) -> None:
        conn = default_paths().connection_file

        def ready() -> bool:
            assert self.proc.poll() is None, f"the daemon exited: {self.log.read_text()}"
            try:
                if json.loads(conn.read_text())["pid"] != self.pid:
                    return False
                with Client(conn, timeout=5) as client:
                    return client.status()["state"] == "ready"
            except (OSError, ValueError, KeyError):
                return False

        assert wait_for(ready, timeout=timeout, interval=0.2), self.log.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log_fh.close()


@pytest.fixture
def daemons(tmp_path: Path):
    started: list[Daemon] = []

    def start() -> Daemon:
        d = Daemon(tmp_path / f"daemon-{len(started)}.log")
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


def test_cli_status_ask_stop_against_a_running_daemon(daemons, tmp_path: Path) -> None:
    r = cli("status")
    assert r.returncode == 3 and "not running" in r.stderr
    r = cli("ask", "anyone?")
    assert r.returncode == 3 and "not running" in r.stderr and "--model" in r.stderr

    d = daemons()
    d.wait_ready()
    conn = default_paths().connection_file
    assert stat.S_IMODE(conn.stat().st_mode) == 0o600
    assert stat.S_IMODE(conn.parent.stat().st_mode) == 0o700
    assert "demo model" in d.log.read_text()

    r = cli("status")
    assert r.returncode == 0, r.stderr
    assert "ready" in r.stdout and "demo" in r.stdout and f"pid {d.pid}" in r.stdout and "CPU" in r.stdout
    st = json.loads(cli("status", "--json").stdout)
    assert st["state"] == "ready" and st["demo"] is True and st["pid"] == d.pid and st["queue_depth"] == 0

    r = cli("ask", "--max-new-tokens", "8", "hello there")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()

    image = tmp_path / "shot.png"
    Image.new("RGB", (120, 80), (30, 60, 90)).save(image)
    r = cli("ask", "--json", "--max-new-tokens", "6", "--image", str(image), "what is this?")
    assert r.returncode == 0, r.stderr
    done = json.loads(r.stdout)
    assert done["finish_reason"] == "length" and done["usage"]["completion_tokens"] == 6 and done["demo"] is True

    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    r = cli("ask", "--image", str(not_an_image), "what?")
    assert r.returncode == 2 and str(not_an_image) in r.stderr and "Traceback" not in r.stderr
    assert "blob" not in r.stderr  # the file, not the protocol's position
    r = cli("ask", "--max-new-tokens", "0", "what?")
    assert r.returncode == 2 and "--max-new-tokens" in r.stderr

    r = cli("stop")
    assert r.returncode == 0 and f"stopped (pid {d.pid})" in r.stdout, r.stderr
    assert d.proc.wait(20) == 0
    assert not conn.exists()
    r = cli("stop")
    assert r.returncode == 3 and "not running" in r.stderr  # as the README says: nothing to stop is exit 3


def test_one_instance_kill9_restart_and_sigterm(daemons) -> None:
    conn = default_paths().connection_file
    first = daemons()
    first.wait_ready()

    second = daemons()
    assert second.proc.wait(30) == 1
    assert "already running" in second.log.read_text() and f"pid {first.pid}" in second.log.read_text()
    assert read_connection_file(conn).pid == first.pid  # the first is untouched and still serves
    with Client(conn) as client:
        client.ping()

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    assert conn.exists()  # left behind by the killed daemon ...
    r = cli("status")
    assert r.returncode == 3 and "has exited" in r.stderr  # ... and recognised as stale

    third = daemons()
    third.wait_ready()  # neither the stale file nor the dead daemon's lock is in the way
    assert read_connection_file(conn).pid == third.pid

    with Client(conn) as client:
        answer = client.ask(None, LONG_PROMPT, max_new_tokens=2000)
        chunks = iter(answer)
        next(chunks)
        third.proc.send_signal(signal.SIGTERM)
        with pytest.raises(GenerationFailed) as failed:
            for _ in chunks:
                pass
    assert failed.value.code == "shutting_down"
    assert third.proc.wait(20) == 0
    assert not conn.exists()
    log = third.log.read_text()
    assert "SIGTERM received" in log and "stopped" in log and "Traceback" not in log


# ---------------------------------------------------------------- the lock itself


def test_flock_refuses_a_second_holder_and_frees_on_release(tmp_path: Path) -> None:
    path = tmp_path / "run" / "qwen-tray.lock"
    a = InstanceLock(path)
    a.acquire()
    assert path.read_text().strip() == str(os.getpid())
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        InstanceLock(path).acquire()
    a.release()
    with InstanceLock(path) as b:
        assert b.held


def test_a_lock_held_by_a_killed_process_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "qwen-tray.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from qwen_tray.instance import InstanceLock; "
         f"InstanceLock({str(path)!r}).acquire(); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunning):
            InstanceLock(path).acquire()
        holder.kill()
        holder.wait(10)
        InstanceLock(path).acquire()
    finally:
        holder.kill()
        holder.wait()


class FakeMutexApi:
    """One Windows machine's mutex namespace, seen by the user with `sid`; other users' names are denied."""

    def __init__(self, sid: str = "S-1-5-21-1004336348-1177238915-682003330-1001",
                 names: dict[str, int] | None = None, owners: dict[str, str] | None = None) -> None:
        self.sid = sid
        self.names: dict[str, int] = {} if names is None else names  # name -> open handles
        self.owners: dict[str, str] = {} if owners is None else owners  # name -> creator's SID
        self.handles: dict[int, str] = {}
        self.next = 100

    def user_sid(self) -> str:
        return self.sid

    def create(self, name: str) -> tuple[int, bool]:
        if self.names.get(name, 0) > 0 and self.owners[name] != self.sid:
            raise OSError(5, "CreateMutexW failed")  # the default DACL admits its creator only
        self.owners.setdefault(name, self.sid)
        existed = self.names.get(name, 0) > 0
        self.next += 1
        self.names[name] = self.names.get(name, 0) + 1
        self.handles[self.next] = name
        return self.next, existed

    def close(self, handle: int) -> None:
        name = self.handles.pop(handle)
        self.names[name] -= 1


def test_windows_named_mutex_through_a_fake(tmp_path: Path) -> None:
    api = FakeMutexApi()
    a = InstanceLock(tmp_path / "unused.lock", windows=True, mutex_api=api)
    a.acquire()
    name = f"Global\\qwen-tray-{api.sid}"
    assert api.names == {name: 1}
    with pytest.raises(AlreadyRunning, match="already running"):
        InstanceLock(tmp_path / "unused.lock", windows=True, mutex_api=api).acquire()
    assert api.names == {name: 1}  # the refused one closed its handle
    a.release()
    assert api.names == {name: 0} and not a.held
    InstanceLock(tmp_path / "unused.lock", windows=True, mutex_api=api).acquire()
    assert not (tmp_path / "unused.lock").exists()  # no lock file on Windows


def test_windows_mutex_is_per_user_so_a_second_account_starts_its_own(tmp_path: Path) -> None:
    """Two accounts on one machine (runas, fast user switching): each gets its own daemon, not ACCESS_DENIED."""
    alice = FakeMutexApi("S-1-5-21-1-2-3-1001")
    bob = FakeMutexApi("S-1-5-21-1-2-3-1002", alice.names, alice.owners)  # the same kernel namespace
    InstanceLock(tmp_path / "a", windows=True, mutex_api=alice).acquire()
    InstanceLock(tmp_path / "b", windows=True, mutex_api=bob).acquire()  # a fixed name would raise OSError here
    assert set(alice.names) == {"Global\\qwen-tray-S-1-5-21-1-2-3-1001", "Global\\qwen-tray-S-1-5-21-1-2-3-1002"}
    squatter = FakeMutexApi("S-1-5-21-1-2-3-1001", alice.names, alice.owners)
    squatter.sid = "S-1-5-21-9-9-9-1003"  # someone created a mutex under another user's name
    with pytest.raises(AlreadyRunning, match="another account"):
        InstanceLock(tmp_path / "c", windows=True, mutex_api=squatter,
                     mutex_name="Global\\qwen-tray-S-1-5-21-1-2-3-1001").acquire()


def test_run_exits_cleanly_on_sigint(daemons) -> None:
    d = daemons()
    d.wait_ready()
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(20) == 0
    assert not default_paths().connection_file.exists()
