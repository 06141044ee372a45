"""The ZeroMQ API end to end: real sockets, CURVE, the real tiny engine, the daemon's threads in-process.

The engine is wrapped (`servicetools.TestEngine`) so each generation runs exactly
`max_new_tokens` tokens: "mid-stream" is then a state a test can wait for (the
first token) and act in. Process-level cases (kill -9, signals, the CLI) are in
test_service.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import zlib

import pytest
from PIL import Image
from servicetools import REPO, RawClient, TestEngine, gen, shared_engine, start_service, wait_for

from qwen_tray.config import Config
from qwen_tray.engine.base import GenerationOptions
from qwen_tray.ipc_server import Server
from qwen_tray.scheduler import Scheduler
from qwen_tray.service import Service
from qwen_tray_client.client import Client, GenerationFailed, RawImage, RequestRejected

LONG = 3000  # forced tokens, a few seconds: every test that starts one cancels or stops it


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    shared_engine()


@pytest.fixture
def start_daemon():
    services: list[Service] = []

    def start(queue_size: int = 32, max_bytes: int = 1 << 20, engine: TestEngine | None = None):
        cfg = Config()
        cfg.server.queue_size = queue_size
        cfg.image.max_bytes = max_bytes
        return start_service(cfg, engine or TestEngine(), services)

    yield start
    for svc in services:
        svc.stop()


def png(w: int = 48, h: int = 32, noise: bool = False) -> bytes:
    img = Image.frombytes("RGB", (w, h), os.urandom(w * h * 3)) if noise else Image.new("RGB", (w, h), (9, 99, 199))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels in a few dozen bytes (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def stream(msgs: list[dict], rid: str) -> tuple[list[str], list[dict]]:
    tokens = [m["text"] for m in msgs if m["id"] == rid and m["event"] == "token"]
    ends = [m for m in msgs if m["id"] == rid and m["event"] in ("done", "error")]
    return tokens, ends


# ---------------------------------------------------------------- streaming, status


def test_streaming_end_to_end_with_the_python_client(start_daemon) -> None:
    svc, info, engine = start_daemon()
    with Client(svc.connection_file, timeout=10) as client:
        assert client.ping() < 1.0
        st = client.status()
        assert st["state"] == "ready" and st["demo"] is True and st["model"] == "tiny-qwen3-vl-ov"
        assert st["version"] and st["queue_depth"] == 0 and st["uptime_s"] >= 0
        assert st["placement"]["summary"] == "CPU (CPU)" and st["placement"]["reason"]

        raw = Image.new("RGB", (40, 30), (200, 10, 10)).tobytes()
        answer = client.ask([png(), Image.new("L", (20, 20)), RawImage(raw, 40, 30, "RGB")], "What is this?",
                            max_new_tokens=24, temperature=0.7, top_p=0.9, priority="interactive")
        chunks = list(answer)
        r = answer.result
        assert r["text"] == "".join(chunks) == answer.text and len(chunks) > 1
        assert r["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 24
        assert r["usage"]["prompt_tokens"] > 0 and r["demo"] is True
        assert set(r["timings"]) == {"queue_ms", "ttft_ms", "total_ms", "tokens_per_s"}
        # Each image arrives at its own size, except that one-token images are raised to 2x2 tokens
        # (image_budget.MIN_TOKEN_SIDE: VLMPipeline aborts on some conversations with one-token images).
        assert engine.image_sizes[-1] == [(48, 32), (64, 64), (64, 64)]

        bgra = RawImage(b"\x10\x20\x30\xff" * 6, 3, 2, "BGRA")
        assert client.ask(bgra, "and this?", max_new_tokens=3).wait()["usage"]["completion_tokens"] == 3


def test_eight_clients_25_requests_each_all_complete_once(start_daemon) -> None:
    svc, info, _ = start_daemon(queue_size=256)
    failures: list[str] = []

    def client(n: int) -> None:
        c = RawClient(info)
        try:
            ids = [f"c{n}-r{i}" for i in range(25)]
            for i, rid in enumerate(ids):
                c.send(gen(rid, f"client {n} question {i}", max_new_tokens=4 + i % 5))
            msgs: list[dict] = []
            ended: set[str] = set()
            while len(ended) < len(ids):
                m = c.recv(60)
                if m is None:
                    failures.append(f"client {n}: silence after {len(ended)} answers")
                    return
                msgs.append(m)
                if m["event"] in ("done", "error", "rejected"):
                    ended.add(m["id"])
            while (m := c.recv(0.3)) is not None:  # a second terminal event would show up here
                msgs.append(m)
            for i, rid in enumerate(ids):
                mine = [m for m in msgs if m["id"] == rid]
                tokens, ends = stream(msgs, rid)
                if mine[0]["event"] != "accepted" or len(ends) != 1 or ends[0]["event"] != "done":
                    failures.append(f"{rid}: {[m['event'] for m in mine]}")
                elif ends[0]["text"] != "".join(tokens) or ends[0]["usage"]["completion_tokens"] != 4 + i % 5:
                    failures.append(f"{rid}: text or length differs")
                elif mine[-1] is not ends[0]:
                    failures.append(f"{rid}: events after the terminal one")
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:5]
    assert svc.scheduler.status()["queue_depth"] == 0


# ---------------------------------------------------------------- scheduling through the wire


def test_interactive_jumps_ahead_of_queued_background_work(start_daemon) -> None:
    svc, info, engine = start_daemon()
    c = RawClient(info)
    try:
        c.send(gen("long", "long", LONG))
        c.until("long", ["token"])
        c.send(gen("b1", "b1", 4))
        c.send(gen("b2", "b2", 4))
        c.send(gen("i1", "i1", 4, priority="interactive"))
        msgs = c.until("i1", ["accepted"])
        positions = {m["id"]: m["queue_position"] for m in msgs if m["event"] == "accepted"}
        assert positions == {"b1": 0, "b2": 1, "i1": 0}
        c.send({"v": 1, "id": "x", "op": "cancel", "target": "long"})
        msgs = c.until("b2", ["done"])
        done_order = [m["id"] for m in msgs if m["event"] == "done"]
        assert done_order == ["long", "i1", "b1", "b2"]
        assert [p for p in engine.prompts[-4:]] == ["long", "i1", "b1", "b2"]
    finally:
        c.close()


def test_the_queue_bound_answers_busy_at_once(start_daemon) -> None:
    svc, info, _ = start_daemon(queue_size=2)
    c = RawClient(info)
    try:
        c.send(gen("run", "run", LONG))
        c.until("run", ["token"])  # running: not counted
        c.send(gen("w1"))
        c.send(gen("w2"))
        c.send(gen("w3"))
        msgs = c.until("w3", ["rejected"], timeout=5)
        (busy,) = [m for m in msgs if m["id"] == "w3"]
        assert busy["code"] == "busy" and "limit is 2" in busy["message"]
        assert [m["event"] for m in msgs if m["id"] in ("w1", "w2")] == ["accepted", "accepted"]
        c.send({"v": 1, "id": "x", "op": "cancel", "target": "run"})
        c.until("w2", ["done"])
    finally:
        c.close()


def test_cancel_mid_stream_frees_the_worker(start_daemon) -> None:
    svc, info, engine = start_daemon()
    c = RawClient(info)
    try:
        c.send(gen("a", "first", LONG))
        msgs = c.until("a", ["token"])
        c.send(gen("a", "same id again"))  # in flight: refused, the first goes on
        msgs += c.until("a", ["rejected"])
        assert "already in flight" in msgs[-1]["message"]
        c.send({"v": 1, "id": "c1", "op": "cancel", "target": "a"})
        msgs += c.until("a", ["done"], timeout=5)
        acks = [m for m in msgs if m["id"] == "c1"]
        assert acks == [{"v": 1, "id": "c1", "event": "ack", "target": "a"}]
        tokens, (done,) = stream(msgs, "a")
        assert done["finish_reason"] == "cancelled" and done["text"] == "".join(tokens) != ""
        assert engine.results[-1].finish_reason == "cancelled"
        assert engine.results[-1].figures.completion_tokens < LONG
        c.send(gen("b", "next", 8))  # the worker is free: b runs to its length (the wait is a hang guard)
        (_, (b_done,)) = stream(c.until("b", ["done"], timeout=30), "b")
        assert b_done["finish_reason"] == "length"
        c.send({"v": 1, "id": "c2", "op": "cancel", "target": "a"})  # ended already
        (nf,) = c.until("c2", ["rejected"])
        assert nf["code"] == "not_found"
    finally:
        c.close()
    other = RawClient(info)  # another client cannot cancel (or even see) this one's requests
    mine = RawClient(info)
    try:
        mine.send(gen("m", "mine", LONG))
        mine.until("m", ["token"])
        other.send({"v": 1, "id": "o", "op": "cancel", "target": "m"})
        assert other.until("o", ["rejected"])[-1]["code"] == "not_found"
        mine.send({"v": 1, "id": "mc", "op": "cancel", "target": "m"})
        mine.until("m", ["done"])
    finally:
        other.close()
        mine.close()


KILLED_CLIENT = """
import json, sys, zmq
LONG = int(sys.argv[2])
info = json.load(open(sys.argv[1]))
s = zmq.Context().socket(zmq.DEALER)
s.curve_serverkey = info["server_public_key"].encode()
s.curve_publickey = info["client_public_key"].encode()
s.curve_secretkey = info["client_secret_key"].encode()
s.connect(info["endpoint"])
s.send_json({"v": 1, "id": "doomed", "op": "generate", "messages": [{"role": "user", "content": "go on"}],
             "options": {"max_new_tokens": LONG}})
while json.loads(s.recv())["event"] != "token":
    pass
print("streaming", flush=True)
import time
time.sleep(600)
"""


def test_a_client_killed_mid_stream_stops_the_generation(start_daemon) -> None:
    svc, info, engine = start_daemon()
    child = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, str(svc.connection_file), str(LONG)],
                             stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert child.stdout.readline().strip() == "streaming"
        n_before = len(engine.results)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert wait_for(lambda: len(engine.results) > n_before, timeout=5), "the generation went on"
        result = engine.results[-1]
        assert result.finish_reason == "cancelled" and result.figures.completion_tokens < LONG
        assert wait_for(lambda: svc.scheduler.status()["state"] == "ready")
    finally:
        child.kill()
        child.wait()
    with Client(svc.connection_file) as client:  # and the daemon serves the next one
        assert client.ask(None, "still there?", max_new_tokens=3).wait()["finish_reason"] == "length"


@pytest.mark.parametrize("curve", ["none", "wrong_client", "wrong_server"])
def test_a_client_without_the_right_keys_gets_no_reply(start_daemon, curve: str) -> None:
    svc, info, engine = start_daemon()
    intruder = RawClient(info, curve=curve)
    try:
        intruder.send({"v": 1, "id": "p", "op": "ping"})
        intruder.send(gen("g", "hello"))
        assert intruder.recv(1.5) is None
    finally:
        intruder.close()
    assert engine.prompts == []
    with Client(svc.connection_file) as client:
        client.ping()


# ---------------------------------------------------------------- bad input


def _bad_inputs(max_bytes: int) -> list[tuple[str, list[bytes], str, str | None]]:
    """(what, frames, code, reply id)."""
    def j(obj: dict) -> bytes:
        return json.dumps(obj).encode()

    def image_req(rid: str, **raw) -> bytes:
        part = {"type": "image", "blob": 0, **({"raw": raw} if raw else {})}
        return j({"v": 1, "id": rid, "op": "generate",
                  "messages": [{"role": "user", "content": [part, {"type": "text", "text": "what?"}]}]})

    truncated = png(64, 64, noise=True)
    return [
        ("not JSON", [b"{this is not json"], "bad_request", None),
        ("not an object", [b"[1, 2, 3]"], "bad_request", None),
        ("NaN", [b'{"v": 1, "id": "n", "op": "ping", "x": NaN}'], "bad_request", None),
        ("Infinity", [b'{"v": 1, "id": "n", "op": "ping", "x": Infinity}'], "bad_request", None),
        ("nested too deep", [b'{"v": 1, "id": "d", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"], "bad_request", None),
        ("no v", [j({"id": "nv", "op": "ping"})], "bad_request", "nv"),
        ("v 2", [j({"v": 2, "id": "v2", "op": "ping"})], "unsupported_version", "v2"),
        ("no id", [j({"v": 1, "op": "ping"})], "bad_request", None),
        ("id too long", [j({"v": 1, "id": "x" * 129, "op": "ping"})], "bad_request", None),
        ("unknown op", [j({"v": 1, "id": "u", "op": "teleport"})], "unknown_op", "u"),
        ("mistyped field", [j(gen("mt", max_new_tokens="5"))], "bad_request", "mt"),
        ("missing field", [j({"v": 1, "id": "mf", "op": "generate"})], "bad_request", "mf"),
        ("empty messages", [j({**gen("em"), "messages": []})], "bad_request", "em"),
        ("empty message", [j({**gen("em2"), "messages": [{"role": "user", "content": ""}]})], "bad_request", "em2"),
        ("blob out of range", [image_req("oor")], "bad_request", "oor"),
        ("blob not an image", [image_req("ni"), b"GIF89a definitely not a picture"], "bad_image", "ni"),
        ("empty blob", [image_req("eb"), b""], "bad_image", "eb"),
        ("truncated image", [image_req("tr"), truncated[: len(truncated) // 2]], "bad_image", "tr"),
        ("raw size mismatch", [image_req("rs", width=4, height=4, mode="RGB"), b"\0" * 47], "bad_image", "rs"),
        ("decompression bomb", [image_req("db"), png_header_only(30000, 30000)], "too_large", "db"),
        ("over the pixel limit", [image_req("pl"), png_header_only(9000, 9000)], "too_large", "pl"),
        ("raw over the pixel limit", [image_req("rp", width=9000, height=9000, mode="RGB"), b"\0" * 10],
         "too_large", "rp"),
        ("over the byte limit", [image_req("bl"), b"\0" * (max_bytes + 1)], "too_large", "bl"),
        ("text longer than the context (tokenized)", [j(gen("ctx", "word " * 5000))], "too_large", "ctx"),
        ("text longer than the context (by size)", [j(gen("ctx2", "x" * 40000))], "too_large", "ctx2"),
        ("unknown option", [j(gen("uo", foo=1))], "bad_request", "uo"),
        ("cancel of nothing", [j({"v": 1, "id": "cn", "op": "cancel", "target": "nothing"})], "not_found", "cn"),
    ]


def test_every_bad_input_is_rejected_with_its_code_and_the_daemon_goes_on(start_daemon) -> None:
    max_bytes = 1 << 20
    svc, info, engine = start_daemon(max_bytes=max_bytes)
    bystander = Client(svc.connection_file)
    answer = bystander.ask(None, "a request of another client", max_new_tokens=600)
    c = RawClient(info)
    try:
        for what, frames, code, rid in _bad_inputs(max_bytes):
            c.sock.send_multipart(frames)
            reply = c.recv(10)
            assert reply is not None, what
            assert (reply["event"], reply["code"], reply["id"]) == ("rejected", code, rid), (what, reply)
            assert len(reply["message"]) > 20, what
            assert set(reply) == {"v", "id", "event", "code", "message"}
        assert c.recv(0.2) is None  # one reply each, nothing more
        assert not any("word word" in p or "xxxx" in p for p in engine.prompts)  # none reached the engine
        c.send(gen("good", "and now a good one", 5), )
        _, (done,) = stream(c.until("good", ["done"]), "good")
        assert done["finish_reason"] == "length"
        c.send(gen("fits", "word " * 1000, 2))  # long, but within the context
        c.until("fits", ["done"])
        assert answer.wait()["usage"]["completion_tokens"] == 600  # the other client was not disturbed
    finally:
        c.close()
        bystander.close()


def test_a_frame_over_the_transport_limit_drops_that_connection_only(start_daemon) -> None:
    max_bytes = 1 << 20
    svc, info, _ = start_daemon(max_bytes=max_bytes)
    c = RawClient(info)
    try:
        c.send(gen("huge", blobs=1), b"\0" * (2 * max_bytes + 1))
        assert c.recv(1.5) is None  # ZeroMQ closes the connection without a reply (MAXMSGSIZE)
        c.send({"v": 1, "id": "p", "op": "ping"})  # the DEALER reconnects by itself
        assert c.until("p", ["pong"])[-1]["event"] == "pong"
    finally:
        c.close()
    with Client(svc.connection_file) as client, pytest.raises(RequestRejected) as info_:
        client.ask(b"\0" * (2 * max_bytes + 1), "too big")  # the Python client refuses it before sending
    assert info_.value.code == "too_large" and "drops frames" in info_.value.message


def test_a_client_that_stops_reading_loses_its_requests() -> None:
    engine = TestEngine()
    scheduler = Scheduler(lambda: engine)
    scheduler.start()
    server = Server(scheduler, sndhwm=4, sndbuf=4096, defaults=GenerationOptions())
    server.start()
    info = server.connection_info().as_dict()
    c = RawClient(info, rcvhwm=1, rcvbuf=4096)
    try:
        c.send(gen("flood", "tell me everything", LONG))
        assert wait_for(lambda: engine.results, timeout=15), "the generation was not cancelled"
        assert engine.results[0].finish_reason == "cancelled"
        assert engine.results[0].figures.completion_tokens < LONG
        reader = RawClient(info)  # the server did not block: others are served
        reader.send({"v": 1, "id": "p", "op": "ping"})
        assert reader.until("p", ["pong"], timeout=5)
        reader.close()
    finally:
        c.close()
        scheduler.stop()
        server.stop()


# ---------------------------------------------------------------- shutdown


def test_stopping_ends_every_request_with_shutting_down(start_daemon) -> None:
    hold = threading.Event()  # "run" streams until the stop has begun, however slow the machine
    svc, info, _ = start_daemon(engine=TestEngine(hold=hold))
    c = RawClient(info)
    try:
        c.send(gen("run", "run", LONG))
        msgs = c.until("run", ["token"])
        c.send(gen("queued", "queued", 4))
        msgs += c.until("queued", ["accepted"])
        stopper = threading.Thread(target=svc.stop)
        stopper.start()
        assert wait_for(lambda: svc.scheduler is not None and svc.scheduler._stopping.is_set())
        hold.set()
        msgs += c.until("run", ["error"], timeout=10)
        msgs += [m for m in iter(lambda: c.recv(0.5), None)]
        stopper.join(10)
        for rid in ("run", "queued"):
            tokens, (end,) = stream(msgs, rid)
            assert (end["event"], end["code"]) == ("error", "shutting_down"), end
            assert end["text"] == "".join(tokens) and "stopping" in end["message"]
        assert not svc.connection_file.exists()
        c.send({"v": 1, "id": "p", "op": "ping"})
        assert c.recv(0.5) is None
    finally:
        c.close()


def test_the_shutdown_op_asks_the_owner_to_stop(start_daemon) -> None:
    svc, info, _ = start_daemon()
    called = []
    svc.on_stop_request(lambda: called.append(1))
    with Client(svc.connection_file) as client:
        assert client.shutdown() == os.getpid()
    assert svc.wait(5) and called == [1]
    svc.stop()
    assert not svc.connection_file.exists()


def test_a_generation_error_reaches_the_client_and_the_next_request_works(start_daemon) -> None:
    svc, info, _ = start_daemon(engine=TestEngine(fail_on="explode"))
    with Client(svc.connection_file) as client:
        answer = client.ask(None, "please explode", max_new_tokens=5)
        with pytest.raises(GenerationFailed) as err:
            answer.wait()
        assert err.value.code == "engine_error" and "on purpose" in err.value.message
        assert client.ask(None, "fine", max_new_tokens=2).wait()["finish_reason"] == "length"


def test_the_examples_in_protocol_md_run(start_daemon, tmp_path) -> None:
    import re

    svc, _, _ = start_daemon()
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "protocol.md").read_text(), re.S)
    assert len(blocks) == 2
    Image.new("RGB", (64, 48), (1, 2, 3)).save(tmp_path / "shot.png")
    env = {**os.environ, "QWEN_TRAY_CONNECTION": str(svc.connection_file), "PYTHONPATH": str(REPO)}
    for code in blocks:
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert "queue_ms" in r.stdout and "length" in r.stdout, r.stdout


def test_an_internal_error_costs_one_request_not_the_server() -> None:
    class BrokenStatus:
        def submit(self, job):  # pragma: no cover - not used
            raise AssertionError

        def cancel(self, job):  # pragma: no cover - not used
            raise AssertionError

        def status(self):
            raise KeyError("a bug")

    server = Server(BrokenStatus())
    server.start()
    c = RawClient(server.connection_info().as_dict())
    try:
        c.send({"v": 1, "id": "s", "op": "status"})
        (reply,) = c.until("s", ["rejected"])
        assert reply["code"] == "bad_request" and "internal error" in reply["message"]
        c.send({"v": 1, "id": "p", "op": "ping"})
        assert c.until("p", ["pong"])
    finally:
        c.close()
        server.stop()
