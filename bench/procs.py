"""The processes a benchmark drives: a path worker (bench/worker.py) and a headless daemon.

Why separate from run.py: starting, timing the load of, and stopping a process
is the same for every section; run.py only says what to measure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class BenchError(RuntimeError):
    """A benchmark step that cannot go on; the message says which and why."""


class Worker:
    """One path in its own process; `call` sends one JSON request and returns its JSON reply."""

    def __init__(self, path: str, log: IO[str], *, model: str = "", cache: str = "", connection: str = "",
                 env: dict[str, str] | None = None) -> None:
        argv = [sys.executable, str(HERE / "worker.py"), path]
        if model:
            argv += ["--model", model]
        if cache:
            argv += ["--cache", cache]
        if connection:
            argv += ["--connection", connection]
        self.name = path
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                     env=env, cwd=str(ROOT))
        ready = self._read()
        self.spawn_to_ready_s = round(time.perf_counter() - t0, 3)
        if ready.get("event") != "ready":
            self.stop()
            raise BenchError(f"{path} worker did not start: {ready.get('message', ready)}")
        self.ready = ready
        self.pid = int(ready["pid"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError(f"{self.name} worker exited (code {self.proc.wait()}); see the bench log")
        return json.loads(line)

    def call(self, **req: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise BenchError(f"{self.name} worker: {reply['error']}")
        return reply

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                    self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class Daemon:
    """`qwen-tray run [--headless]` on one model, CPU, with its own config, cache, runtime and log dirs."""

    def __init__(self, model: str, root: Path, log: IO[str], *, backend: str = "genai",
                 extra_env: dict[str, str] | None = None, headless: bool = True, extra_config: str = "") -> None:
        self.root = root
        self.headless = headless
        self.log = log
        root.mkdir(parents=True, exist_ok=True)
        cfg = root / "config.toml"
        cfg.write_text(
            f'[model]\npath = {json.dumps(str(model))}\nbackend = "{backend}"\ndevice = "CPU"\n\n'
            '[server]\nrequest_timeout_s = 1800.0\n\n[log]\nlevel = "INFO"\n' + extra_config,
            encoding="utf-8",
        )
        self.env = dict(os.environ)
        for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data"),
                         ("XDG_STATE_HOME", "state"), ("XDG_RUNTIME_DIR", "run")):
            (root / sub).mkdir(mode=0o700, exist_ok=True)
            self.env[var] = str(root / sub)
        self.env["QWEN_TRAY_CONFIG"] = str(cfg)
        self.env.pop("QWEN_TRAY_CONNECTION", None)
        self.env.update(extra_env or {})
        self.connection = root / "run" / "qwen-tray" / "connection.json"
        self.cache_dir = root / "cache" / "qwen-tray" / "compiled"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0

    def start(self, timeout: float = 900.0) -> float:
        """Start and wait until the model is loaded; return seconds from spawn to ready."""
        from qwen_tray_client.client import Client, ClientError, DaemonNotRunning

        self.connection.unlink(missing_ok=True)
        t0 = time.perf_counter()
        argv = [sys.executable, "-m", "qwen_tray", "run", *(["--headless"] if self.headless else [])]
        self.proc = subprocess.Popen(argv, env=self.env, cwd=str(ROOT), stdout=self.log, stderr=self.log)
        self.pid = self.proc.pid
        client = None
        try:
            while time.perf_counter() - t0 < timeout:
                if self.proc.poll() is not None:
                    raise BenchError(f"the daemon exited with code {self.proc.returncode}; see the bench log")
                if client is None and self.connection.is_file():
                    try:
                        client = Client(self.connection, timeout=10.0)
                    except (DaemonNotRunning, ClientError, OSError, ValueError):
                        client = None
                if client is not None:
                    state = client.status().get("state")
                    if state == "ready":
                        return round(time.perf_counter() - t0, 3)
                    if state == "error":
                        raise BenchError(f"the daemon could not load the model: {client.status().get('error')}")
                time.sleep(0.1)  # a benchmark's wait for start-up, not the daemon's own loop
        finally:
            if client is not None:
                client.close()
        raise BenchError(f"the daemon was not ready within {timeout:g} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
