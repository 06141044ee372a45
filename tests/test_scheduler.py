"""The scheduler on the real tiny engine: order, bounds, cancellation, failures, idle unload, stop."""

from __future__ import annotations

import random
import threading
import time

import pytest
from PIL import Image
from servicetools import RecordingSink, TestEngine, shared_engine, wait_for

from qwen_tray.config import ImageConfig
from qwen_tray.engine.base import GenerationOptions, Message
from qwen_tray.jobs import Busy, Job
from qwen_tray.scheduler import Scheduler

LONG = 3000  # forced tokens: a few seconds on the tiny model, always cancelled or stopped before the end


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    shared_engine()


def make(engine: TestEngine | None = None, **kw) -> tuple[Scheduler, TestEngine]:
    engine = engine or TestEngine()
    s = Scheduler(lambda: engine, demo=True, model_name="tiny", **kw)
    s.start()
    assert wait_for(lambda: s.status()["state"] == "ready"), s.status()
    return s, engine


def job(text: str = "hello there", max_new_tokens: int = 8, priority: str = "background", images=None) -> Job:
    return Job([Message("user", text, images or [])], GenerationOptions(max_new_tokens=max_new_tokens),
               RecordingSink(), priority, label=text[:20])


def test_streams_and_ends_once() -> None:
    s, engine = make()
    try:
        j = job(max_new_tokens=20)
        assert s.submit(j) == 0
        assert j.sink.done.wait(20)
        r = j.sink.result
        assert r is not None and j.sink.terminal == 1
        assert r.finish_reason == "length" and r.figures.completion_tokens == 20
        assert r.text == "".join(j.sink.chunks) and r.text
        assert j.sink.events[0] == ("start", None)
        assert j.sink.demo is True and j.sink.queue_ms is not None
        st = s.status()
        assert st["state"] == "ready" and st["model"] == "tiny" and st["demo"] is True and st["loaded"]
        assert st["placement"]["summary"] == "CPU (CPU)" and st["queue_depth"] == 0 and st["error"] is None
    finally:
        s.stop()


def test_interactive_jumps_ahead_fifo_within_priority() -> None:
    s, engine = make()
    try:
        first = job("first", LONG)
        s.submit(first)
        assert first.sink.first_chunk.wait(20)
        b1, b2, i1, i2 = job("b1"), job("b2"), job("i1", priority="interactive"), job("i2", priority="interactive")
        assert [s.submit(b1), s.submit(b2), s.submit(i1), s.submit(i2)] == [0, 1, 0, 1]
        assert s.status()["queue_depth"] == 4
        s.cancel(first)
        for j in (b1, b2, i1, i2):
            assert j.sink.done.wait(20)
        order = [p.split("\n")[0] for p in engine.prompts]
        assert order == ["first", "i1", "i2", "b1", "b2"]
    finally:
        s.stop()


def test_queue_bound_counts_waiting_not_running() -> None:
    s, _ = make(queue_size=2)
    try:
        running = job("run", LONG)
        s.submit(running)
        assert running.sink.first_chunk.wait(20)
        s.submit(job("w1"))
        s.submit(job("w2"))
        with pytest.raises(Busy, match="limit is 2"):
            s.submit(job("w3"))
        with pytest.raises(Busy):
            s.submit(job("i", priority="interactive"))
        s.cancel(running)
    finally:
        s.stop()


def test_cancel_running_stops_at_next_token_and_frees_the_worker() -> None:
    s, engine = make()
    try:
        j = job("long", LONG)
        s.submit(j)
        assert j.sink.first_chunk.wait(20)
        s.cancel(j)
        assert j.sink.done.wait(30)  # a hang guard, not a speed figure: "soon" is the token count below
        r = j.sink.result
        assert r is not None and r.finish_reason == "cancelled" and j.sink.terminal == 1
        assert r.text == "".join(j.sink.chunks)
        assert engine.results[-1].figures.completion_tokens < LONG
        nxt = job("next")
        s.submit(nxt)
        assert nxt.sink.done.wait(10) and nxt.sink.result.finish_reason == "length"
    finally:
        s.stop()


def test_cancel_queued_ends_at_once_without_running() -> None:
    s, engine = make()
    try:
        running = job("run", LONG)
        s.submit(running)
        assert running.sink.first_chunk.wait(20)
        queued = job("queued")
        s.submit(queued)
        s.cancel(queued)  # ends on this thread, now
        assert queued.sink.done.is_set() and queued.sink.terminal == 1
        assert queued.sink.result.finish_reason == "cancelled" and queued.sink.result.text == ""
        assert ("start", None) not in queued.sink.events
        direct = job("direct")  # job.cancel set by its owner without calling scheduler.cancel
        s.submit(direct)
        direct.cancel.set()
        s.cancel(running)
        assert direct.sink.done.wait(10) and direct.sink.result.finish_reason == "cancelled"
        assert all("queued" not in p and "direct" not in p for p in engine.prompts)
        s.cancel(queued)  # cancelling an ended job is a no-op
        assert queued.sink.terminal == 1
    finally:
        s.stop()


def test_engine_exception_fails_that_job_and_the_worker_lives() -> None:
    s, _ = make(TestEngine(fail_on="boom"))
    try:
        bad = job("boom")
        s.submit(bad)
        assert bad.sink.done.wait(10)
        assert bad.sink.error is not None and bad.sink.error[0] == "engine_error"
        assert "on purpose" in bad.sink.error[1] and bad.sink.terminal == 1
        good = job("fine")
        s.submit(good)
        assert good.sink.done.wait(10) and good.sink.result.finish_reason == "length"
        assert s.status()["state"] == "ready"
    finally:
        s.stop()


def test_time_limit_ends_with_timeout_and_partial_text() -> None:
    s, _ = make(request_timeout_s=1.0)  # room for the first tokens on a loaded machine; LONG takes 2-4 s alone
    try:
        j = job("slow", LONG)
        s.submit(j)
        assert j.sink.done.wait(10)
        code, message, partial = j.sink.error
        assert code == "timeout" and "1 s" in message
        assert partial and partial == "".join(j.sink.chunks)
    finally:
        s.stop()


def test_stop_ends_queued_and_running_with_shutting_down() -> None:
    s, engine = make()
    running = job("run", LONG)
    s.submit(running)
    assert running.sink.first_chunk.wait(20)
    queued = [job(f"q{i}") for i in range(3)]
    for q in queued:
        s.submit(q)
    s.stop()
    for j in [running, *queued]:
        assert j.sink.done.is_set() and j.sink.terminal == 1
        assert j.sink.error[0] == "shutting_down"
    assert running.sink.error[2] == "".join(running.sink.chunks) != ""
    assert engine.closed == 1
    with pytest.raises(Busy, match="shutting down"):
        s.submit(job("late"))


def test_idle_unload_and_reload_on_next_request() -> None:
    loads = []

    def factory() -> TestEngine:
        loads.append(time.monotonic())
        return TestEngine()

    s = Scheduler(factory, keep_alive_s=0.3)
    s.start()
    try:
        assert wait_for(lambda: s.status()["loaded"])
        j = job()
        s.submit(j)
        assert j.sink.done.wait(10)
        assert wait_for(lambda: not s.status()["loaded"], timeout=5)
        assert s.status()["state"] == "ready" and len(loads) == 1
        j2 = job()
        s.submit(j2)
        assert j2.sink.done.wait(10) and j2.sink.result.finish_reason == "length"
        assert len(loads) == 2 and s.loads == 2
    finally:
        s.stop()


def test_reload_and_listeners() -> None:
    states: list[str] = []
    engine = TestEngine()
    s = Scheduler(lambda: engine)
    s.add_listener(states.append)
    s.start()
    try:
        assert wait_for(lambda: s.status()["state"] == "ready")
        j = job()
        s.submit(j)
        assert j.sink.done.wait(10)
        assert wait_for(lambda: states[-1:] == ["ready"])
        s.reload()
        assert wait_for(lambda: s.loads == 2)
        assert wait_for(lambda: states[-1:] == ["ready"])
        assert engine.closed == 1
        assert states == ["ready", "busy", "ready", "loading", "ready"]  # "loading" was the initial state
    finally:
        s.stop()


def test_load_failure_is_state_error_and_requests_fail_cleanly() -> None:
    attempts = []

    def broken() -> TestEngine:
        attempts.append(1)
        raise RuntimeError("no device can compile this model")

    s = Scheduler(broken)
    s.start()
    try:
        assert wait_for(lambda: s.status()["state"] == "error")
        assert "no device" in s.status()["error"]
        j = job()
        s.submit(j)
        assert j.sink.done.wait(10)
        assert j.sink.error[0] == "engine_error" and "could not be loaded" in j.sink.error[1]
        assert len(attempts) == 2  # the request tried once more
        assert wait_for(lambda: s.status()["state"] == "error")
    finally:
        s.stop()


def test_images_fit_the_token_budget_on_the_worker() -> None:
    s, engine = make(image_cfg=ImageConfig(max_tokens=4))
    try:
        big = Image.new("RGB", (640, 480), (10, 200, 30))
        small = Image.new("RGB", (32, 32), (1, 2, 3))
        j = job("describe", images=[big, small])
        s.submit(j)
        assert j.sink.done.wait(10)
        (sizes,) = engine.image_sizes
        assert sizes[0][0] * sizes[0][1] <= 4 * 32 * 32 and sizes[0][0] % 32 == 0
        assert sizes[1] == (64, 64)  # one token: raised to 2x2 (image_budget.MIN_TOKEN_SIDE), never more
        assert j.messages[0].images[0].size == (640, 480)  # the job's own images are untouched
    finally:
        s.stop()
    # On the NPU the images share what the text leaves of MAX_PROMPT_LEN.
    s, engine = make(TestEngine(language_device="NPU"), npu_max_prompt_len=100)
    try:
        j = job("describe", images=[Image.new("RGB", (1024, 1024))])
        s.submit(j)
        assert j.sink.done.wait(10)
        (w, h), = engine.image_sizes[0]
        assert (w // 32) * (h // 32) <= 100 - 32 - engine.count_text_tokens("describe")
    finally:
        s.stop()


def test_every_job_ends_exactly_once_under_concurrent_cancels() -> None:
    s, _ = make(queue_size=64)
    rng = random.Random(7)
    jobs: list[Job] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(12):
            j = job(f"c{n} r{i}", max_new_tokens=rng.choice((4, 16, 64)),
                    priority=rng.choice(("background", "interactive")))
            try:
                s.submit(j)
            except Busy:
                continue
            with lock:
                jobs.append(j)
            if rng.random() < 0.4:
                time.sleep(rng.random() * 0.02)
                s.cancel(j)

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for j in jobs:
            assert j.sink.done.wait(30), j.label
        time.sleep(0.2)  # a second terminal event would have arrived by now
        assert all(j.sink.terminal == 1 for j in jobs)
        assert len(jobs) == 48
    finally:
        s.stop()
