"""Helpers for the scheduler, IPC and service tests: the real tiny engine, shared and instrumented.

Loading the tiny model costs a second or two; the tests load it once per session
and wrap it (`TestEngine`) to make the tiny model useful for timing-sensitive
cases: with `forced` every generation runs exactly `max_new_tokens` tokens
(min_new_tokens = max_new_tokens, as the benchmarks do), so "mid-stream" is a
state a test can reach and act in. Results and images are recorded so a test
can check what the engine actually did.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq

from qwen_tray.engine.base import GenerationOptions, GenerationResult, Message, OnChunk

REPO = Path(__file__).resolve().parent.parent
TINY_OV = REPO / "tests" / "fixtures" / "tiny-qwen3-vl-ov"

_engine_lock = threading.Lock()
_engine: Any = None


def shared_engine() -> Any:
    """The tiny model on CPU, loaded once per test session."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from qwen_tray.engine.loader import load_engine

            _engine = load_engine(TINY_OV, "genai", "CPU")
        return _engine


class TestEngine:
    """The real engine with knobs: forced lengths, a failure trigger, a placement override, records."""

    __test__ = False  # not a pytest class

    def __init__(self, engine: Any = None, *, forced: bool = True, fail_on: str | None = None,
                 language_device: str | None = None, hold: threading.Event | None = None) -> None:
        self.inner = engine or shared_engine()
        self.forced = forced
        self.fail_on = fail_on
        self.hold = hold  # set: after its first chunk a generation waits for it (up to 30 s), then goes on
        self.backend = self.inner.backend
        self.model_dir = self.inner.model_dir
        self.placement = self.inner.placement
        if language_device is not None:
            self.placement = dataclasses.replace(self.inner.placement, language_device=language_device)
        self.results: list[GenerationResult] = []
        self.image_sizes: list[list[tuple[int, int]]] = []
        self.prompts: list[str] = []
        self.closed = 0

    def generate(self, messages: Sequence[Message], options: GenerationOptions, on_chunk: OnChunk,
                 cancel: threading.Event) -> GenerationResult:
        text = "\n".join(m.text for m in messages)
        self.prompts.append(text)
        self.image_sizes.append([i.size for m in messages for i in m.images])
        if self.fail_on is not None and self.fail_on in text:
            raise RuntimeError(f"engine failure on purpose ({self.fail_on})")
        if self.forced:
            options = dataclasses.replace(options, min_new_tokens=options.max_new_tokens)
        if self.hold is not None:
            hold, forward = self.hold, on_chunk

            def on_chunk(text: str) -> None:  # the answer is still running whatever the machine's speed
                forward(text)
                hold.wait(30)
        result = self.inner.generate(messages, options, on_chunk, cancel)
        self.results.append(result)
        return result

    def count_text_tokens(self, text: str) -> int:
        return self.inner.count_text_tokens(text)

    def close(self) -> None:
        self.closed += 1  # the shared engine stays loaded for the next test


class RecordingSink:
    """A JobSink that keeps every event and counts terminal ones."""

    __test__ = False

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.chunks: list[str] = []
        self.terminal = 0
        self.done = threading.Event()
        self.started = threading.Event()
        self.first_chunk = threading.Event()
        self.threads: set[str] = set()
        self.result: GenerationResult | None = None
        self.error: tuple[str, str, str] | None = None
        self.queue_ms: float | None = None
        self.demo: bool | None = None

    def on_start(self) -> None:
        self.events.append(("start", None))
        self.started.set()

    def on_chunk(self, text: str) -> None:
        self.chunks.append(text)
        self.events.append(("chunk", text))
        self.first_chunk.set()

    def on_done(self, result: GenerationResult, queue_ms: float, demo: bool) -> None:
        self.events.append(("done", result))
        self.result, self.queue_ms, self.demo = result, queue_ms, demo
        self.terminal += 1
        self.threads.add(threading.current_thread().name)
        self.done.set()

    def on_error(self, code: str, message: str, partial_text: str) -> None:
        self.events.append(("error", code))
        self.error = (code, message, partial_text)
        self.terminal += 1
        self.done.set()


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll `predicate` (tests only) until true or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def start_service(cfg: Any, engine: TestEngine, services: list[Any]) -> tuple[Any, dict, TestEngine]:
    """A real Service (ZeroMQ server, scheduler) over `engine`, started and ready; appended to `services`
    so the calling fixture stops it. Returns the service, its connection file's contents and the engine."""
    from qwen_tray.paths import default_paths
    from qwen_tray.service import Service

    svc = Service(default_paths(), cfg, engine_factory=lambda _dir: engine)
    svc.start()
    services.append(svc)
    assert wait_for(lambda: svc.scheduler.status()["state"] == "ready")
    return svc, json.loads(svc.connection_file.read_text()), engine


# ---------------------------------------------------------------- raw protocol client


class RawClient:
    """A bare DEALER speaking the protocol frame by frame (no qwen_tray_client.client logic), for exact checks."""

    __test__ = False

    def __init__(self, info: dict[str, Any] | Path, *, curve: str = "ok", rcvhwm: int | None = None,
                 rcvbuf: int | None = None) -> None:
        if isinstance(info, Path):
            info = json.loads(info.read_text())
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if rcvhwm is not None:
            self.sock.rcvhwm = rcvhwm
        if rcvbuf is not None:
            self.sock.rcvbuf = rcvbuf
        if curve == "ok":
            self.sock.curve_serverkey = info["server_public_key"].encode()
            self.sock.curve_publickey = info["client_public_key"].encode()
            self.sock.curve_secretkey = info["client_secret_key"].encode()
        elif curve == "wrong_client":  # knows the server's key, but not the client keys
            pub, sec = zmq.curve_keypair()
            self.sock.curve_serverkey = info["server_public_key"].encode()
            self.sock.curve_publickey, self.sock.curve_secretkey = pub, sec
        elif curve == "wrong_server":  # the right client keys, a wrong server key
            pub, _ = zmq.curve_keypair()
            self.sock.curve_serverkey = pub
            self.sock.curve_publickey = info["client_public_key"].encode()
            self.sock.curve_secretkey = info["client_secret_key"].encode()
        # curve == "none": plain, no CURVE at all
        self.sock.connect(info["endpoint"])

    def send(self, obj: dict[str, Any] | bytes, *blobs: bytes) -> None:
        frame = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.sock.send_multipart([frame, *blobs])

    def recv(self, timeout: float = 10.0) -> dict[str, Any] | None:
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return json.loads(self.sock.recv())

    def until(self, rid: str, events: Sequence[str], timeout: float = 20.0) -> list[dict[str, Any]]:
        """Messages (of any id) until one for `rid` has an event in `events`; fails on a timeout."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.0, deadline - time.monotonic()))
            assert msg is not None, f"no {events} for {rid} within {timeout} s; got {[m.get('event') for m in out]}"
            out.append(msg)
            if msg.get("id") == rid and msg.get("event") in events:
                return out

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def gen(rid: str, text: str = "hello there", max_new_tokens: int = 8, blobs: int = 0, **options: Any
        ) -> dict[str, Any]:
    content: Any = text
    if blobs:
        content = [{"type": "image", "blob": i} for i in range(blobs)] + [{"type": "text", "text": text}]
    return {"v": 1, "id": rid, "op": "generate", "messages": [{"role": "user", "content": content}],
            "options": {"max_new_tokens": max_new_tokens, **options}}
