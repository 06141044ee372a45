"""Privacy, checked from outside: a fresh HOME, the real daemon answering, the kernel's view of every connection.

Each command runs under `strace -f` (installed by installer/dev-setup.sh), so native code (OpenVINO,
libzmq) and child processes are seen too, not only Python's socket module. Today's failure this guards
against: `import openvino` wrote ~/intel/openvino_ga_cid and ~/intel/stats and a helper process looked
up an analytics host (a DNS query to the resolver, seen as a connect to port 53).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY_OV = REPO / "tests" / "fixtures" / "tiny-qwen3-vl-ov"
TRACED = "connect,sendto,sendmsg"
# Variables that would change the result: ours, the XDG dirs (all paths must fall under the fresh HOME) and the
# CI markers openvino-telemetry reads (the code under test must set them itself).
DROP = ("XDG_", "QWEN_TRAY_", "TF_BUILD", "CI", "JENKINS_URL", "DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP)}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    return env


def _traced(home: Path, trace: Path, *args: str) -> list[str]:
    assert shutil.which("strace"), "strace is missing: run installer/dev-setup.sh (it installs it)"
    return ["strace", "-f", "-qq", "-e", f"trace={TRACED}", "-e", "signal=none", "-o", str(trace),
            sys.executable, "-m", "qwen_tray", *args]


def _outside_connections(trace: Path) -> list[str]:
    """Syscall lines that reach anything but loopback (or the kernel's own netlink for interface lists).

    A DNS query counts even to a loopback resolver (systemd-resolved listens on 127.0.0.53:53), and so does
    systemd-resolved's local socket. nscd's socket does not: glibc asks it for user names too (getpwuid).
    """
    bad = []
    for line in trace.read_text(errors="replace").splitlines():
        if not re.search(r"\b(connect|sendto|sendmsg)\(", line) or "sa_family=" not in line:
            continue  # sendto on an already connected socket names no address
        family = re.search(r"sa_family=(\w+)", line).group(1)
        if family == "AF_NETLINK":
            continue
        if "htons(53)" in line:
            bad.append(line)
            continue
        if family == "AF_UNIX":
            if "systemd/resolve" in line:
                bad.append(line)
            continue
        if family == "AF_INET" and re.search(r'inet_addr\("127\.', line):
            continue
        if family == "AF_INET6" and re.search(r'inet_pton\(AF_INET6, "(::1|::ffff:127\.[0-9.]+)"', line):
            continue
        bad.append(line)
    return bad


def _created_outside_ours(home: Path) -> list[str]:
    """Files created under HOME that are not inside a folder named qwen-tray."""
    return [str(p.relative_to(home)) for p in home.rglob("*")
            if p.is_file() and "qwen-tray" not in p.relative_to(home).parts]


@pytest.mark.timeout(240)
def test_daemon_and_commands_write_nothing_outside_and_connect_only_to_loopback(tmp_path: Path) -> None:
    from PIL import Image

    home = tmp_path / "fresh-home"
    home.mkdir()
    env = _env(home)
    cfg = tmp_path / "config.toml"
    cfg.write_text("[generation]\nmax_new_tokens = 4\n")
    image = tmp_path / "shot.png"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(image)
    traces: list[Path] = []

    def trace(name: str) -> Path:
        traces.append(tmp_path / f"{name}.strace")
        return traces[-1]

    daemon = subprocess.Popen(_traced(home, trace("daemon"), "--config", str(cfg), "run", "--headless"),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        conn = home / ".local" / "state" / "qwen-tray" / "run" / "connection.json"
        deadline = time.monotonic() + 120
        while not conn.exists() and daemon.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert conn.exists(), f"the daemon did not start: {daemon.stdout.read() if daemon.poll() is not None else ''}"

        def cli(name: str, *args: str) -> subprocess.CompletedProcess:
            return subprocess.run(_traced(home, trace(name), "--config", str(cfg), *args), env=env,
                                  capture_output=True, text=True, timeout=120)

        asked = cli("ask", "ask", "--image", str(image), "What is this?")
        assert asked.returncode == 0, asked.stderr
        in_process = cli("ask-model", "ask", "--model", str(TINY_OV), "--device", "CPU", "--image", str(image), "Hi")
        assert in_process.returncode == 0, in_process.stderr
        status = cli("status", "status")
        assert status.returncode == 0 and "ready" in status.stdout, status.stdout + status.stderr
        stopped = cli("stop", "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()

    assert not (home / "intel").exists(), f"OpenVINO telemetry wrote {sorted(os.listdir(home / 'intel'))}"
    assert _created_outside_ours(home) == []
    for t in traces:
        assert t.exists() and t.stat().st_size > 0 or t.name != "daemon.strace"
        assert _outside_connections(t) == [], f"{t.name}: connections beyond loopback"
    # The check itself sees connections: the daemon's own loopback socket is in the trace.
    assert any('inet_addr("127.0.0.1")' in t.read_text() for t in traces)

    log_dir = home / ".local" / "state" / "qwen-tray" / "log"
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700
    assert [stat.S_IMODE(f.stat().st_mode) for f in log_dir.iterdir()] == [0o600]


def test_the_trace_check_catches_a_name_lookup_and_the_telemetry_files_without_the_opt_out(tmp_path: Path) -> None:
    """The same checks on plain `import openvino` (no qwen-tray first): they must fail, or they prove nothing."""
    home = tmp_path / "fresh-home"
    home.mkdir()
    t = tmp_path / "bare.strace"
    code = "import openvino, time; time.sleep(3)"  # the telemetry helper process sends within a second
    subprocess.run(["strace", "-f", "-qq", "-e", f"trace={TRACED}", "-e", "signal=none", "-o", str(t),
                    sys.executable, "-c", code], env=_env(home), check=True, timeout=120)
    assert (home / "intel").is_dir()
    assert _created_outside_ours(home)
    assert _outside_connections(t), "expected the analytics host lookup in the trace"


def test_importing_daemon_first_declines_openvino_telemetry(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    home.mkdir()
    code = ("import qwen_tray, openvino, openvino_telemetry as tm; t = tm.Telemetry(); "
            "print(t.consent, type(t.backend).__name__)")
    out = subprocess.run([sys.executable, "-c", code], env=_env(home), capture_output=True, text=True, check=True,
                         timeout=120)
    assert out.stdout.split()[0] == "False"
    assert not (home / "intel").exists()


def test_log_folder_and_files_are_the_users_alone_even_when_an_older_version_left_them_open(tmp_path: Path) -> None:
    import logging

    from qwen_tray.logs import setup_logging

    log_dir = tmp_path / "state" / "log"
    log_dir.mkdir(parents=True, mode=0o755)
    log_dir.chmod(0o755)
    old = log_dir / "qwen-tray.log"
    old.write_text("an older line\n")
    old.chmod(0o644)
    try:
        setup_logging(old, "INFO", stderr=False)
        logging.getLogger("t").info("hello")
        handler = logging.getLogger().handlers[0]
        handler.maxBytes = 1  # rotate on the next record: the new file must be private too
        logging.getLogger("t").info("rotated")
    finally:
        setup_logging(None, "WARNING", stderr=False)
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700
    files = sorted(log_dir.iterdir())
    assert [f.name for f in files] == ["qwen-tray.log", "qwen-tray.log.1"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}


@pytest.mark.parametrize("path", ["genai", "optimum"])
def test_bench_workers_load_openvino_without_telemetry(tmp_path: Path, path: str) -> None:
    """The benchmark's in-process paths import openvino_genai / optimum-intel themselves: privacy comes first."""
    home = tmp_path / "fresh-home"
    home.mkdir()
    env = _env(home)
    t = tmp_path / "worker.strace"
    res = subprocess.run(["strace", "-f", "-qq", "-e", f"trace={TRACED}", "-e", "signal=none", "-o", str(t),
                          sys.executable, str(REPO / "bench" / "worker.py"), path, "--model", str(TINY_OV)],
                         input='{"op": "quit"}\n', env=env, capture_output=True, text=True, timeout=240)
    assert '"event": "ready"' in res.stdout, res.stdout + res.stderr
    assert not (home / "intel").exists()
    assert _outside_connections(t) == []


def test_the_start_up_error_log_without_a_console_is_private_too(tmp_path: Path) -> None:
    """cli.main's fallback log (pythonw: no stderr) creates the same 0700 folder and 0600 file as setup_logging."""
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[model\n", encoding="utf-8")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "c")}
    code = ("import sys; sys.stderr = None; sys.stdout = None; from qwen_tray.cli import main; "
            f"sys.exit(main(['--config', {str(cfg)!r}, 'run', '--headless']))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    log = tmp_path / "state" / "qwen-tray" / "log" / "qwen-tray.log"
    assert str(cfg) in log.read_text(encoding="utf-8")
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700 and stat.S_IMODE(log.stat().st_mode) == 0o600
