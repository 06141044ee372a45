"""Continuous batching on the real tiny model: interleaved streams, cancel, exact outputs, interactive first.

The engine is genai's ContinuousBatchingPipeline on CPU, driven by the scheduler's worker.
Exact-output comparisons pin the CPU to f32 (conftest.EXACT_PRECISION): on AVX-512/AMX CPUs
the defaults can flip near-tied tokens of the random model between a batch of four and a
batch of one. Every generation is forced to its length (min = max new tokens). The module's
engine has `reuse_images` on (off by default), for the follow-up tests.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import EXACT_PRECISION
from PIL import Image
from servicetools import RecordingSink, wait_for

from qwen_tray.engine.base import GenerationOptions, Message
from qwen_tray.engine.loader import load_engine
from qwen_tray.jobs import Busy, Job
from qwen_tray.scheduler import Scheduler

COLOURS = [(200, 30, 30), (10, 200, 30), (10, 20, 230), (200, 200, 30)]
LONG = 3000  # forced tokens: seconds on the tiny model; every test that starts one cancels or stops it


@pytest.fixture(scope="module")
def engine(tiny_model: Path):
    eng = load_engine(tiny_model, "genai", "CPU", replace(EXACT_PRECISION, max_batch=4, batching=True,
                                                          reuse_images=True))
    assert getattr(eng, "batching", False), type(eng).__name__
    yield eng
    eng.close()


class TimedSink(RecordingSink):
    """Records when each chunk arrived."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__()
        self.chunk_times: list[float] = []

    def on_chunk(self, text: str) -> None:
        self.chunk_times.append(time.monotonic())
        super().on_chunk(text)


def messages(i: int) -> list[Message]:
    return [Message("user", f"What is on screen {i}?", [Image.new("RGB", (160, 96), COLOURS[i % 4])])]


def job(i: int, n: int, priority: str = "background") -> Job:
    return Job(messages(i), GenerationOptions(max_new_tokens=n, min_new_tokens=n), TimedSink(), priority,
               label=f"job{i}")


class KeepOpen:
    """The module's engine for one scheduler: stopping the scheduler does not close it."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def close(self) -> None:
        pass


def start(engine, **kw) -> Scheduler:
    s = Scheduler(lambda: KeepOpen(engine), model_name="tiny", **kw)
    s.start()
    assert wait_for(lambda: s.status()["state"] == "ready"), s.status()
    return s


def alone(engine, i: int, n: int) -> str:
    return engine.generate(messages(i), GenerationOptions(max_new_tokens=n, min_new_tokens=n), lambda _c: None,
                           threading.Event()).text


def test_four_concurrent_generates_interleave_end_once_and_equal_their_solo_runs(engine) -> None:
    n = 48
    solo = [alone(engine, i, n) for i in range(4)]
    s = start(engine)
    try:
        jobs = [job(i, n) for i in range(4)]
        for j in jobs:
            s.submit(j)
        for j in jobs:
            assert j.sink.done.wait(60)
        for i, j in enumerate(jobs):
            assert j.sink.terminal == 1 and j.sink.result is not None
            assert j.sink.result.finish_reason == "length" and j.sink.result.figures.completion_tokens == n
            assert j.sink.result.text == "".join(j.sink.chunks) == solo[i], f"job {i} differs from its solo run"
        # Interleaved: every job streamed while every other one was streaming.
        for a in jobs:
            for b in jobs:
                if a is not b:
                    assert a.sink.chunk_times[0] < b.sink.chunk_times[-1], "one job finished before another began"
        assert s.status()["state"] == "ready" and s.status()["queue_depth"] == 0
    finally:
        s.stop()


def test_cancelling_one_leaves_the_others_intact(engine) -> None:
    n = 64
    solo = [alone(engine, i, n) for i in range(4)]
    s = start(engine)
    try:
        jobs = [job(i, n) for i in range(4)]
        for j in jobs:
            s.submit(j)
        assert jobs[2].sink.first_chunk.wait(30)
        s.cancel(jobs[2])
        for j in jobs:
            assert j.sink.done.wait(60)
        cancelled = jobs[2].sink
        assert cancelled.terminal == 1 and cancelled.result is not None
        assert cancelled.result.finish_reason == "cancelled"
        assert cancelled.result.text == "".join(cancelled.chunks) and len(cancelled.chunks) < n
        for i in (0, 1, 3):
            r = jobs[i].sink.result
            assert jobs[i].sink.terminal == 1 and r is not None and r.finish_reason == "length"
            assert r.text == solo[i]
    finally:
        s.stop()


def test_interactive_request_gets_its_first_token_while_background_streams(engine) -> None:
    s = start(engine, queue_size=4)
    try:
        background = [job(i, LONG) for i in range(2)]
        for j in background:
            s.submit(j)
        assert background[0].sink.first_chunk.wait(30)
        popup = job(3, 8, priority="interactive")
        s.submit(popup)
        assert popup.sink.done.wait(30)
        assert popup.sink.result is not None and popup.sink.result.finish_reason == "length"
        assert not any(j.sink.done.is_set() for j in background), "the popup waited for background work"
        for j in background:
            s.cancel(j)
            assert j.sink.done.wait(30) and j.sink.terminal == 1
    finally:
        s.stop()


def test_max_batch_bounds_background_work_and_the_queue_bound_still_holds(engine, tiny_model: Path) -> None:
    one = load_engine(tiny_model, "genai", "CPU", replace(EXACT_PRECISION, max_batch=1, batching=True))
    s = start(one, queue_size=2)
    try:
        running = job(0, LONG)
        s.submit(running)
        assert running.sink.first_chunk.wait(30)
        w1, w2, w3 = job(1, 4), job(2, 4), job(3, 4)
        assert s.submit(w1) == 0 and s.submit(w2) == 1
        with pytest.raises(Busy, match="limit is 2"):
            s.submit(w3)
        assert not w1.sink.started.is_set(), "background work beyond max_batch must wait"
        urgent = job(3, 4, priority="interactive")
        with pytest.raises(Busy):
            s.submit(urgent)  # the bound holds for interactive jobs too
        s.cancel(w2)
        assert w2.sink.done.is_set() and w2.sink.result.finish_reason == "cancelled"
        s.submit(urgent)
        assert urgent.sink.done.wait(30) and urgent.sink.result.finish_reason == "length"
        assert not running.sink.done.is_set() and not w1.sink.started.is_set()
        s.cancel(running)
        assert w1.sink.done.wait(30) and w1.sink.result.finish_reason == "length"
        assert running.sink.result.finish_reason == "cancelled" and running.sink.terminal == 1
    finally:
        s.stop()
        one.close()


def test_stop_and_time_limit_end_batched_jobs_with_their_codes(engine) -> None:
    s = start(engine, request_timeout_s=1.0)
    try:
        slow = job(0, LONG)
        s.submit(slow)
        assert slow.sink.done.wait(30)
        code, message, partial = slow.sink.error
        assert code == "timeout" and "limit of 1 s" in message and partial == "".join(slow.sink.chunks)
    finally:
        s.stop()
    s = start(engine)
    jobs = [job(i, LONG) for i in range(3)]
    for j in jobs:
        s.submit(j)
    assert all(j.sink.first_chunk.wait(30) for j in jobs)
    s.stop()
    for j in jobs:
        assert j.sink.terminal == 1 and j.sink.error is not None and j.sink.error[0] == "shutting_down"
    assert not engine.busy(), "every request left genai"


def test_a_request_that_fails_at_start_costs_only_itself(engine) -> None:
    s = start(engine)
    try:
        good = job(0, 32)
        bad = Job(messages(1), GenerationOptions(max_new_tokens=4, temperature=0.5, top_p=5.0), TimedSink(),
                  "background")  # genai refuses top_p > 1 when it adds the request
        s.submit(good)
        s.submit(bad)
        assert bad.sink.done.wait(30) and good.sink.done.wait(30)
        assert bad.sink.terminal == 1 and bad.sink.error is not None and bad.sink.error[0] == "engine_error"
        assert good.sink.terminal == 1 and good.sink.result.finish_reason == "length"
    finally:
        s.stop()


def test_two_conversations_about_the_same_image_each_depend_only_on_their_own_turns(engine) -> None:
    """The prefix cache shares the image's KV blocks between clients, never their conversations."""
    shot = Image.new("RGB", (160, 96), (90, 40, 160))

    def conversation(answer: str, question: str) -> list[Message]:
        return [Message("user", "What is on screen?", [shot.copy()]), Message("assistant", answer),
                Message("user", question)]

    convs = [conversation("a purple window", "Which button?"), conversation("a login form", "Any errors?")]
    opts = GenerationOptions(max_new_tokens=24, min_new_tokens=24)
    solo = [engine.generate(c, opts, lambda _c: None, threading.Event()).text for c in convs]
    assert solo[0] != solo[1]
    s = start(engine)
    try:
        for _ in range(2):  # the second time both prefixes are in the cache
            jobs = [Job(c, opts, TimedSink(), "background") for c in convs]
            for j in jobs:
                s.submit(j)
            for j, expected in zip(jobs, solo, strict=True):
                assert j.sink.done.wait(30) and j.sink.terminal == 1
                assert j.sink.result.text == expected
    finally:
        s.stop()


# ---------------------------------------------------------------- serial engines: preempt at a token boundary


@pytest.fixture(scope="module")
def serial(tiny_model: Path):
    """VLMPipeline, one request at a time (what the NPU runs): the popup preempts background work."""
    eng = load_engine(tiny_model, "genai", "CPU", replace(EXACT_PRECISION, batching=False))
    assert not getattr(eng, "batching", False) and eng.preemptible
    yield eng
    eng.close()


def test_serial_engine_popup_preempts_background_which_then_continues_its_answer(serial) -> None:
    n = LONG
    s = start(serial, preempt=True)
    try:
        background, queued = job(0, n), job(1, 8)
        s.submit(background)
        s.submit(queued)
        assert background.sink.first_chunk.wait(30)
        popup = job(2, 8, priority="interactive")
        s.submit(popup)
        assert popup.sink.done.wait(30) and popup.sink.result.finish_reason == "length"
        assert not background.sink.done.is_set(), "the popup waited for the background answer"
        assert s.status()["queue_depth"] == 1, "a preempted job is not counted as waiting"
        assert background.sink.done.wait(60) and queued.sink.done.wait(30)
        b = background.sink
        assert b.terminal == 1 and [e for e, _ in b.events].count("start") == 1
        assert b.result.finish_reason == "length" and b.result.figures.completion_tokens == n
        assert b.result.text == "".join(b.chunks)
        # popup events came while the background stream was interrupted, and it continued after them
        assert b.chunk_times[0] < popup.sink.chunk_times[0] < popup.sink.chunk_times[-1] < b.chunk_times[-1]
        assert queued.sink.chunk_times[0] > b.chunk_times[-1], "the preempted job goes back to the head of the line"
    finally:
        s.stop()


def test_serial_engine_preempted_job_cancelled_while_waiting_ends_once_with_its_partial_text(serial) -> None:
    s = start(serial, preempt=True)
    try:
        background = job(0, LONG)
        s.submit(background)
        assert background.sink.first_chunk.wait(30)
        popup = job(2, LONG, priority="interactive")
        s.submit(popup)
        assert popup.sink.first_chunk.wait(30)
        s.cancel(background)  # waiting in the preempted line: ends now, with what it had streamed
        assert background.sink.done.is_set() and background.sink.terminal == 1
        r = background.sink.result
        assert r.finish_reason == "cancelled" and r.text == "".join(background.sink.chunks) != ""
        assert 0 < r.figures.completion_tokens < LONG
        s.cancel(popup)
        assert popup.sink.done.wait(10) and popup.sink.terminal == 1
    finally:
        s.stop()


def test_a_job_preempted_as_the_daemon_stops_still_ends_once_with_shutting_down(serial, monkeypatch) -> None:
    """The worker saw "preempted" just before stop() swept the queues: it must not put the job back where
    no one would ever end it. The interleaving is forced: the check returns only once stop() has begun."""
    from qwen_tray import scheduler as sched

    s = start(serial, preempt=True)
    stopper: list[threading.Thread] = []
    real = sched._RunFlag.preempted

    def preempted_as_stop_begins(flag) -> bool:
        answer = real(flag)
        if answer and not stopper:
            stopper.append(threading.Thread(target=s.stop, kwargs={"timeout": 30}))
            stopper[0].start()
            assert s._stopping.wait(10)
        return answer

    monkeypatch.setattr(sched._RunFlag, "preempted", preempted_as_stop_begins)
    background = job(0, LONG)
    s.submit(background)
    assert background.sink.first_chunk.wait(30)
    popup = job(2, 8, priority="interactive")
    s.submit(popup)
    assert background.sink.done.wait(30), "the preempted job never ended"
    assert background.sink.terminal == 1 and background.sink.error is not None
    assert background.sink.error[0] == "shutting_down" and background.sink.error[2] == "".join(background.sink.chunks)
    assert popup.sink.done.wait(10) and popup.sink.terminal == 1
    stopper[0].join(30)
    assert not stopper[0].is_alive()


def test_an_unexpected_failure_in_the_worker_fails_that_job_and_the_next_one_runs(engine, monkeypatch) -> None:
    """A bug outside the engine's own error handling ends its job with engine_error; the worker lives on."""
    s = start(engine)
    try:
        real = Scheduler._run
        calls: list[int] = []

        def first_call_fails(self, job):
            calls.append(job.seq)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            return real(self, job)

        monkeypatch.setattr(Scheduler, "_run", first_call_fails)
        broken, after = job(0, 8), job(1, 8)
        s.submit(broken)
        assert broken.sink.done.wait(30) and broken.sink.terminal == 1
        assert broken.sink.error is not None and broken.sink.error[:2] == ("engine_error", "internal error: a bug")
        s.submit(after)
        assert after.sink.done.wait(30) and after.sink.result.finish_reason == "length"
    finally:
        s.stop()


# ---------------------------------------------------------------- follow-ups: the earlier image is not encoded again
#
# A follow-up of a remembered conversation runs through genai's history path, which keeps the
# model's own answer as it generated it; the random fixture's answers are often broken UTF-8
# that does not survive a trip through text, so references here are replays of the same
# conversation on a fresh cache (the same path), not the one-prompt rendering.


def converse(s: Scheduler, image: Image.Image, questions: list[str], n: int = 12,
             priority: str = "interactive") -> list[str]:
    """Ask `questions` in one conversation about `image` the way the popup does; the answers."""
    history: list[Message] = []
    answers = []
    for i, q in enumerate(questions):
        msgs = [*history, Message("user", q, [image] if i == 0 else [])]
        j = Job(msgs, GenerationOptions(max_new_tokens=n, min_new_tokens=n), TimedSink(), priority)
        s.submit(j)
        assert j.sink.done.wait(30) and j.sink.terminal == 1 and j.sink.result.finish_reason == "length"
        answers.append(j.sink.result.text)
        history = [*msgs, Message("assistant", j.sink.result.text)]
    return answers


def test_popup_follow_ups_run_the_vision_encoder_once(engine) -> None:
    shot = Image.new("RGB", (160, 96), (30, 160, 90))
    s = start(engine)
    try:
        before = engine.vision_encodings
        answers = converse(s, shot, ["What is on screen?", "And then?", "Why?"])
        assert engine.vision_encodings == before + 1, "a follow-up encoded the first turn's image again"
        # determinism of that path: the same conversation again gives the same answers
        assert converse(s, shot, ["What is on screen?", "And then?", "Why?"]) == answers
    finally:
        s.stop()


def test_without_the_conversation_cache_every_follow_up_encodes_again(tiny_model: Path) -> None:
    eng = load_engine(tiny_model, "genai", "CPU", replace(EXACT_PRECISION, reuse_images=False, batching=True))
    s = start(eng)
    try:
        converse(s, Image.new("RGB", (160, 96), (30, 160, 90)), ["What is on screen?", "And then?"])
        assert eng.vision_encodings == 2
    finally:
        s.stop()
        eng.close()


def alone_msgs(engine, msgs: list[Message], n: int) -> str:
    req = engine.start(msgs, GenerationOptions(max_new_tokens=n, min_new_tokens=n), lambda _c: None,
                       threading.Event())
    while not req.poll():
        engine.step()
    return req.result().text


def test_an_edited_answer_is_not_served_from_the_remembered_conversation(engine) -> None:
    shot = Image.new("RGB", (160, 96), (160, 30, 90))
    opts = GenerationOptions(max_new_tokens=12, min_new_tokens=12)
    s = start(engine)
    try:
        first = Job([Message("user", "What is on screen?", [shot])], opts, TimedSink(), "background")
        s.submit(first)
        assert first.sink.done.wait(30)
        edited = [*first.messages, Message("assistant", "something else"), Message("user", "And then?")]
        before = engine.vision_encodings
        follow = Job(edited, opts, TimedSink(), "background")
        s.submit(follow)
        assert follow.sink.done.wait(30)
        assert engine.vision_encodings == before + 1, "an edited conversation is rendered (and encoded) anew"
        assert follow.sink.result.text == alone_msgs(engine, edited, 12)
    finally:
        s.stop()


def test_a_solo_follow_up_is_preempted_by_new_work_and_continues_in_the_batch(engine) -> None:
    shot = Image.new("RGB", (160, 96), (10, 90, 160))
    s = start(engine)
    try:
        first = Job([Message("user", "What is on screen?", [shot])], GenerationOptions(max_new_tokens=8),
                    TimedSink(), "background")
        s.submit(first)
        assert first.sink.done.wait(30)
        msgs = [*first.messages, Message("assistant", first.sink.result.text), Message("user", "Tell me more.")]
        follow = Job(msgs, GenerationOptions(max_new_tokens=LONG, min_new_tokens=LONG), TimedSink(), "background")
        s.submit(follow)
        assert follow.sink.first_chunk.wait(30)
        other = job(1, 8)
        s.submit(other)
        assert other.sink.done.wait(30) and other.sink.result.finish_reason == "length"
        assert not follow.sink.done.is_set(), "the newcomer waited for the solo answer"
        s.cancel(follow)
        assert follow.sink.done.wait(30) and follow.sink.terminal == 1
        r = follow.sink.result
        assert r.finish_reason == "cancelled" and r.text == "".join(follow.sink.chunks)
        assert [e for e, _ in follow.sink.events].count("start") == 1
    finally:
        s.stop()


def test_api_follow_ups_encode_the_image_once_and_clients_keep_their_own_conversations(engine) -> None:
    import io

    from qwen_tray.config import Config
    from qwen_tray.paths import default_paths
    from qwen_tray.service import Service
    from qwen_tray_client.client import Client

    shot = Image.new("RGB", (160, 96), (120, 120, 20))
    buf = io.BytesIO()
    shot.save(buf, "PNG")
    blob = buf.getvalue()

    def user(text: str, image: bool = False) -> dict:
        parts = [{"type": "image", "blob": 0}] if image else []
        return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}

    def as_messages(conv: list[dict]) -> list[Message]:
        out = []
        for m in conv:
            if isinstance(m["content"], str):
                out.append(Message(m["role"], m["content"]))
            else:
                images = [shot] if any(p["type"] == "image" for p in m["content"]) else []
                out.append(Message(m["role"], m["content"][-1]["text"], images))
        return out

    svc = Service(default_paths(), Config(), engine_factory=lambda _dir: KeepOpen(engine))
    svc.start()
    try:
        assert wait_for(lambda: svc.scheduler.status()["state"] == "ready")
        with Client(svc.connection_file) as a, Client(svc.connection_file) as b:
            def turn(client: Client, conv: list[dict], text: str) -> str:
                conv.append(user(text, image=not conv))
                answer = client.generate(conv, [blob], max_new_tokens=12).wait()["text"]
                conv.append({"role": "assistant", "content": answer})
                return answer

            conv_a: list[dict] = []
            conv_b: list[dict] = []
            before = engine.vision_encodings
            turn(a, conv_a, "What is this?")
            turn(a, conv_a, "Which button?")
            turn(a, conv_a, "And then?")
            assert engine.vision_encodings == before + 1, "an API follow-up encoded the image again"
            # b: the same image, its own conversation, interleaved with a's
            turn(b, conv_b, "Which app is it?")
            before = engine.vision_encodings
            answer_a = turn(a, conv_a, "Why?")  # not the conversation answered last: rendered anew
            answer_b = turn(b, conv_b, "Any errors?")
            assert engine.vision_encodings == before + 2
        # each answer is its own conversation's, exactly as that conversation alone rendered as one prompt
        assert answer_a == alone_msgs(engine, as_messages(conv_a[:-1]), 12)
        assert answer_b == alone_msgs(engine, as_messages(conv_b[:-1]), 12)
    finally:
        svc.stop()


def test_http_follow_ups_encode_the_image_once_and_clients_keep_their_own_conversations(engine) -> None:
    """The same over the OpenAI-style HTTP API: every turn resends the image as a data: URL."""
    import httpx
    from apitools import data_url, free_port, png

    from qwen_tray.config import Config
    from qwen_tray.paths import default_paths
    from qwen_tray.service import Service

    blob = png(160, 96, (200, 90, 20))
    shot = Image.open(__import__("io").BytesIO(blob)).convert("RGB")
    cfg = Config()
    cfg.http.port = free_port()
    svc = Service(default_paths(), cfg, engine_factory=lambda _dir: KeepOpen(engine))
    svc.start()
    try:
        assert wait_for(lambda: svc.scheduler.status()["state"] == "ready")
        key = default_paths().api_key_file.read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{cfg.http.port}/v1", timeout=60,
                          headers={"Authorization": f"Bearer {key}"}) as http:
            def turn(conv: list[dict], text: str) -> str:
                if conv:
                    conv.append({"role": "user", "content": text})
                else:
                    conv.append({"role": "user", "content": [
                        {"type": "image_url", "image_url": {"url": data_url(blob)}}, {"type": "text", "text": text}]})
                r = http.post("/chat/completions", json={"model": "qwen-tray", "messages": conv, "max_tokens": 12})
                assert r.status_code == 200, r.text
                answer = r.json()["choices"][0]["message"]["content"]
                conv.append({"role": "assistant", "content": answer})
                return answer

            conv_a: list[dict] = []
            conv_b: list[dict] = []
            before = engine.vision_encodings
            turn(conv_a, "What is this?")
            turn(conv_a, "Which button?")
            turn(conv_a, "And then?")
            assert engine.vision_encodings == before + 1, "an HTTP follow-up encoded the image again"
            turn(conv_b, "Which app is it?")
            answer_a = turn(conv_a, "Why?")
            answer_b = turn(conv_b, "Any errors?")

        def as_messages(conv: list[dict]) -> list[Message]:
            return [Message(m["role"], m["content"] if isinstance(m["content"], str) else m["content"][-1]["text"],
                            [] if isinstance(m["content"], str) else [shot]) for m in conv]

        assert answer_a == alone_msgs(engine, as_messages(conv_a[:-1]), 12)
        assert answer_b == alone_msgs(engine, as_messages(conv_b[:-1]), 12)
    finally:
        svc.stop()


@pytest.mark.desktop
def test_the_popup_asks_follow_ups_without_encoding_its_image_again(engine, tk_root) -> None:
    """The real popup on the real scheduler: a question and two follow-ups about one capture."""
    from uitools import pump

    from qwen_tray.ui.popup import AnswerPopup, PopupSettings

    s = start(engine)
    try:
        settings = PopupSettings(options=GenerationOptions(max_new_tokens=12, min_new_tokens=12))
        popup = AnswerPopup(tk_root, s, Image.new("RGB", (160, 96), (250, 250, 250)), (10, 10, 160, 96),
                            (0, 0, 1280, 1024), settings)
        before = engine.vision_encodings
        for q in ("What is on screen?", "And then?", "Why?"):
            assert popup.ask(q)
            pump(tk_root, lambda: popup.state == "done", 30, f"the answer to {q!r}")
        assert engine.vision_encodings == before + 1, "a popup follow-up encoded the capture again"
        assert len(popup._turns) == 3 and all(t.answer for t in popup._turns)
        popup.close()
    finally:
        s.stop()
