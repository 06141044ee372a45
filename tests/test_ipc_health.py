"""A daemon that stays healthy: nothing accumulates per chunk, per thread or per request.

In-process daemon (real sockets, CURVE, the real tiny engine wrapped by `TestEngine`
so lengths are exact); descriptors and threads read from /proc/self.
"""

from __future__ import annotations

import os
import select
import threading

import pytest
from servicetools import TestEngine, shared_engine, start_service, wait_for

from qwen_tray.config import Config
from qwen_tray.service import Service
from qwen_tray_client.client import Client
from qwen_tray.ipc_server import EventQueue


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    shared_engine()


@pytest.fixture
def daemon():
    services: list[Service] = []

    def start(engine: TestEngine | None = None, **server: object) -> tuple[Service, dict, TestEngine]:
        cfg = Config()
        for k, v in server.items():
            setattr(cfg.server, k, v)
        return start_service(cfg, engine or TestEngine(), services)

    yield start
    for svc in services:
        svc.stop()


def test_streamed_chunks_leave_no_descriptor_behind(daemon) -> None:
    """openvino.genai calls the streamer from threads of its own; a socket per calling thread leaked one
    descriptor per chunk (about 26 per answer of 132 tokens here) until ZeroMQ refused new sockets."""
    svc, _, engine = daemon()
    with Client(svc.connection_file, timeout=30) as client:
        warm = client.ask(None, "warm up", max_new_tokens=132)
        assert "".join(warm) == warm.result["text"]
        fds, tasks = open_fds(), threads()
        chunks = 0
        for i in range(8):
            answer = client.ask(None, f"question {i}", max_new_tokens=132)
            got = list(answer)
            chunks += len(got)
            assert "".join(got) == answer.result["text"]
            assert answer.result["usage"]["completion_tokens"] == 132
        assert chunks > 100
        assert open_fds() <= fds + 2, (fds, open_fds())
        assert threads() <= tasks + 2, (tasks, threads())


def test_event_queue_delivers_every_item_in_order_from_many_threads() -> None:
    """The hand-off's soundness under contention: 8 producers, one consumer that sleeps in select() on the
    wake-up descriptor (as the server thread does in zmq poll), no item lost, each producer's order kept."""
    q = EventQueue()
    n_threads, n_items = 8, 5000
    received: list[tuple] = []

    def produce(t: int) -> None:
        for i in range(n_items):
            q.put(("t", t, i))

    producers = [threading.Thread(target=produce, args=(t,)) for t in range(n_threads)]
    for p in producers:
        p.start()
    while len(received) < n_threads * n_items:
        ready, _, _ = select.select([q.fileno()], [], [], 10)
        assert ready, f"no wake-up with {len(received)} of {n_threads * n_items} received"
        received += q.drain()
    for p in producers:
        p.join()
    assert q.drain() == []
    for t in range(n_threads):
        assert [i for (_, tt, i) in received if tt == t] == list(range(n_items))
    q.close()
    q.put(("t", 0, 0))  # after close: dropped, no error


def _png(w: int = 48, h: int = 32) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (9, 99, 199)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def held_decode(monkeypatch: pytest.MonkeyPatch):
    """Every image decode in the server waits until the test releases it (the test hook: a patched decoder;
    the ZeroMQ server decodes through qwen_tray.admission, the checks it shares with the HTTP API)."""
    import qwen_tray.admission

    entered, release = threading.Event(), threading.Event()
    real = qwen_tray.admission.decode_image

    def decode(*args, **kwargs):
        entered.set()
        assert release.wait(30), "the test never released the decode"
        return real(*args, **kwargs)

    monkeypatch.setattr(qwen_tray.admission, "decode_image", decode)
    yield entered, release
    release.set()


def test_a_held_image_decode_delays_no_other_client(daemon, held_decode) -> None:
    from servicetools import RawClient, gen

    entered, release = held_decode
    svc, info, engine = daemon()
    assert svc._tokenizer is not None  # loaded with the model, not on the first request that needs it
    a, b = RawClient(info), RawClient(info)
    try:
        a.send(gen("img", "what is this?", 5, blobs=1), _png())
        assert entered.wait(10)  # A's image is being decoded, and stays so
        b.send({"v": 1, "id": "p", "op": "ping"})
        assert b.until("p", ["pong"], timeout=5)[-1]["event"] == "pong"
        b.send(gen("b1", "another client's question", 20))  # B's whole stream runs meanwhile
        msgs = b.until("b1", ["done"], timeout=20)
        assert [m["event"] for m in msgs][0] == "accepted" and msgs[-1]["usage"]["completion_tokens"] == 20
        assert a.recv(0.2) is None  # A is not answered yet: its request is still being checked
        release.set()
        msgs = a.until("img", ["done"], timeout=20)
        assert msgs[0]["event"] == "accepted" and msgs[-1]["finish_reason"] == "length"
        assert engine.image_sizes[-1] == [(48, 32)]
    finally:
        a.close()
        b.close()


def test_requests_being_checked_keep_their_order_and_can_be_cancelled(daemon, held_decode) -> None:
    from servicetools import RawClient, gen

    entered, release = held_decode
    svc, info, engine = daemon()
    c = RawClient(info)
    try:
        c.send(gen("first", "with an image", 5, blobs=1), _png())
        assert entered.wait(10)
        c.send(gen("second", "text only", 5))  # checked at once, but accepted after "first"
        c.send(gen("first", "a duplicate id"))
        assert c.until("first", ["rejected"], timeout=5)[-1]["message"].startswith("id 'first' is already")
        c.send({"v": 1, "id": "c", "op": "cancel", "target": "first"})
        assert c.until("c", ["ack"], timeout=5)[-1]["target"] == "first"
        release.set()
        msgs = c.until("second", ["done"], timeout=20)
        accepted = [m["id"] for m in msgs if m["event"] == "accepted"]
        assert accepted == ["first", "second"]
        (first_done,) = [m for m in msgs if m["id"] == "first" and m["event"] == "done"]
        assert first_done["finish_reason"] == "cancelled"
    finally:
        c.close()


def test_leaving_a_stream_early_cancels_it_and_frees_its_inbox(daemon) -> None:
    svc, _, engine = daemon()
    with Client(svc.connection_file, timeout=10) as client:
        answer = client.ask(None, "a long answer", max_new_tokens=3000)
        for i, _chunk in enumerate(answer):
            if i == 2:
                break
        assert wait_for(lambda: len(engine.results) == 1, timeout=10), "the generation went on"
        result = engine.results[0]
        assert result.finish_reason == "cancelled" and result.figures.completion_tokens < 3000
        assert client.ping() < 5
        assert client._inbox == {}  # nothing kept for the abandoned answer (nor for the ping)
        # the same with close() on an answer never iterated, and with a context manager
        with client.ask(None, "another long one", max_new_tokens=3000):
            pass
        assert wait_for(lambda: len(engine.results) == 2, timeout=10)
        assert engine.results[1].finish_reason == "cancelled"
        assert client.ask(None, "and the next", max_new_tokens=4).wait()["usage"]["completion_tokens"] == 4
        assert client._inbox == {}


def test_a_rejection_with_a_null_id_reaches_the_caller(daemon) -> None:
    """A request nested deeper than the protocol allows cannot even be read for its id: the daemon answers
    `rejected` with id null. The caller gets that rejection, not a timeout blaming the daemon."""
    from qwen_tray_client.client import RequestRejected

    svc, _, _ = daemon()
    deep: object = "x"
    for _ in range(40):
        deep = [deep]
    with Client(svc.connection_file, timeout=5) as client:
        with pytest.raises(RequestRejected) as err:
            client.generate([{"role": "user", "content": [{"type": "text", "text": "hi", "extra": deep}]}])
        assert err.value.code == "bad_request" and "nested" in err.value.message
        assert client._inbox == {} and client._awaiting_first == set()
        assert client.ping() < 5  # and the client goes on


def test_a_dead_server_thread_removes_the_connection_file_and_stops_the_daemon(daemon) -> None:
    """A bug that kills the IPC thread must not leave a daemon that looks alive (connection file, state ready)
    while every client times out: the file goes at once, the owner is asked to stop, and `run` exits 1."""
    from servicetools import RawClient

    svc, info, _ = daemon()
    stop_requests: list[int] = []
    svc.on_stop_request(lambda: stop_requests.append(1))

    def broken(router: object, batch: int = 64) -> None:
        raise RuntimeError("a bug in the server loop")

    svc.server._drain_requests = broken
    c = RawClient(info)
    try:
        c.send({"v": 1, "id": "p", "op": "ping"})
        assert svc.wait(10), "no stop was requested"
        assert wait_for(lambda: not svc.connection_file.exists(), timeout=5)
        assert stop_requests == [1]
        assert "a bug in the server loop" in svc.failure and svc.exit_code == 1
    finally:
        c.close()
    svc.stop()  # the owner's part: clean, with the thread already gone
    assert svc.exit_code == 1


def test_a_failure_repeating_per_token_is_logged_once_per_request_with_a_count(
        daemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Every token's hand-over fails (as `Too many open files` did): one error with its traceback and one
    count at the end of the request, not a traceback per token; the answer still ends with its `done`."""
    import logging

    import qwen_tray_client.protocol

    svc, _, _ = daemon()
    real = qwen_tray_client.protocol.reply

    def failing(request_id, event, **fields):
        if event == "token":
            raise OSError(24, "Too many open files")
        return real(request_id, event, **fields)

    monkeypatch.setattr(qwen_tray_client.protocol, "reply", failing)
    with caplog.at_level(logging.INFO), Client(svc.connection_file, timeout=10) as client:
        answer = client.ask(None, "tell me", max_new_tokens=200)
        assert list(answer) == [] and len(answer.result["text"]) > 20  # no token arrived; done did
        rid = answer.id
    about = [r for r in caplog.records if rid in r.getMessage() and "failed" in r.getMessage()]
    assert len(about) == 2, [r.getMessage() for r in about][:5]
    first, total = about
    assert "Too many open files" in first.getMessage() and first.exc_info is not None
    assert "failed" in total.getMessage() and "times in all" in total.getMessage()
    assert int(total.getMessage().split(" failed ")[1].split()[0]) > 10


def test_cancelling_an_answer_that_has_just_ended_is_not_an_error(daemon) -> None:
    """The answer ended on the daemon before the cancel got there (found by bench/endurance.py): the daemon
    says not_found, which only means "too late"; the answer is read to its end as it ended."""
    svc, _, engine = daemon()
    with Client(svc.connection_file, timeout=10) as client:
        answer = client.ask(None, "short", max_new_tokens=3)
        assert wait_for(lambda: len(engine.results) == 1, timeout=10)  # ended on the daemon, not yet read here
        answer.cancel()
        assert answer.wait()["finish_reason"] == "length"
        assert client._inbox == {}
