"""Long conversations stay within the prompt budget on every path, and the user is told what was left out.

The real tiny model (context 4096 tokens, its preprocessor caps an image at 64 vision tokens) answers through
the real daemon: ZeroMQ with the raw protocol, HTTP with the `openai` package, and the scheduler with the
messages the popup builds (the popup's own status line is in test_budget_popup.py). Every generation runs
exactly `max_new_tokens` tokens (servicetools.TestEngine), so a conversation grows by a known amount per
turn. The prompt token count checked is the one the engine itself reports. The NPU is simulated by the
existing seam: the real engine on the CPU with a placement that says the language model is on the NPU.
"""

from __future__ import annotations

import io
import json

import httpx
import openai
import pytest
from apitools import data_url, free_port
from PIL import Image
from servicetools import RawClient, RecordingSink, TestEngine, shared_engine, start_service, wait_for

from qwen_tray.config import Config
from qwen_tray.engine.base import GenerationOptions, Message
from qwen_tray.jobs import Job
from qwen_tray.scheduler import Scheduler
from qwen_tray.service import Service

CONTEXT = 4096  # the tiny model's text_config.max_position_embeddings
TURNS = 7  # long questions (~700 tokens each, with an image): untrimmed, the 6th passes the context
ANSWER = 8  # tokens per answer: the questions make the conversation grow, so the test stays quick


def question(turn: int) -> str:
    return f"Question {turn}: compare this picture with the last one. " + "word " * 350


def images_went_first(trimmed: dict, older_images: set[tuple[int, int]]) -> bool:
    """Text of older turns only goes once every older image of the turns that stay has gone."""
    if not trimmed["dropped_messages"]:
        return True
    kept = {p for p in older_images if p[0] not in trimmed["dropped_messages"]}
    return {tuple(p) for p in trimmed["dropped_images"]} >= kept


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    shared_engine()


@pytest.fixture
def daemon():
    services: list[Service] = []

    def start(npu_max_prompt_len: int | None = None, http: bool = False):
        cfg = Config()
        engine = TestEngine()
        if npu_max_prompt_len is not None:
            cfg.npu.max_prompt_len = npu_max_prompt_len
            engine = TestEngine(language_device="NPU")
        cfg.http.enabled = http
        if http:
            cfg.http.port = free_port()
        return start_service(cfg, engine, services)

    yield start
    for svc in services:
        svc.stop()


def png(turn: int, w: int = 640, h: int = 480) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), ((37 * turn) % 256, 90, 200)).save(buf, "PNG")
    return buf.getvalue()


def zmq_turn(client: RawClient, rid: str, history: list[dict], blobs: list[bytes], question: str,
             image: bytes | None, max_new_tokens: int) -> dict:
    """Send the conversation so far plus a new question (with an image), return its terminal event."""
    content: list[dict] = [{"type": "text", "text": question}]
    if image is not None:
        content.insert(0, {"type": "image", "blob": len(blobs)})
        blobs.append(image)
    history.append({"role": "user", "content": content})
    client.send({"v": 1, "id": rid, "op": "generate", "messages": history,
                 "options": {"max_new_tokens": max_new_tokens}}, *blobs)
    end = client.until(rid, ["done", "error", "rejected"], timeout=120)[-1]
    if end["event"] == "done":
        history.append({"role": "assistant", "content": end["text"]})
    return end


def test_zeromq_follow_ups_with_images_stay_within_the_context_and_say_what_was_left_out(daemon) -> None:
    _, info, engine = daemon()
    client = RawClient(info)
    history: list[dict] = []
    blobs: list[bytes] = []
    limit = CONTEXT - ANSWER  # the answer's room: max_new_tokens
    ends = []
    try:
        for turn in range(TURNS):
            end = zmq_turn(client, f"t{turn}", history, blobs, question(turn), png(turn), ANSWER)
            assert end["event"] == "done", end
            ends.append(end)
            assert engine.results[-1].figures.prompt_tokens == end["usage"]["prompt_tokens"]
            assert end["usage"]["prompt_tokens"] <= limit, [e["usage"]["prompt_tokens"] for e in ends]
            assert engine.image_sizes[-1][-1] == (640, 480)  # the newest question's image, untouched
            assert engine.prompts[-1].endswith(question(turn))  # and the newest question, whole
            if end["trimmed"]:
                older = {(i, 0) for i in range(0, len(history) - 2, 2)}  # each older question has an image
                assert images_went_first(end["trimmed"], older), end["trimmed"]
    finally:
        client.close()
    assert all("trimmed" in e for e in ends)  # documented: null when nothing was left out
    trimmed = [e["trimmed"] for e in ends if e["trimmed"]]
    assert ends[0]["trimmed"] is None and trimmed, [e["usage"] for e in ends]
    last = trimmed[-1]
    assert last["dropped_messages"][:2] == [0, 1]  # the oldest question and its answer
    assert last["prompt_limit"] == limit and "left out" in last["note"]
    assert len(engine.image_sizes[-1]) < len(blobs)  # fewer images reached the engine than were sent


def test_http_follow_ups_stay_within_the_context_and_the_openai_client_sees_trimmed(daemon) -> None:
    svc, _, engine = daemon(http=True)
    key = svc.paths.api_key_file.read_text().strip()
    client = openai.OpenAI(base_url=f"{svc.http.url}", api_key=key, max_retries=0)
    messages: list[dict] = []
    seen = []
    for turn in range(TURNS):
        messages.append({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(png(turn))}},
            {"type": "text", "text": question(turn)}]})
        if turn < TURNS - 1:
            r = client.chat.completions.create(model="qwen-tray", messages=messages, max_tokens=ANSWER)
            assert r.usage.prompt_tokens == engine.results[-1].figures.prompt_tokens <= CONTEXT - ANSWER
            seen.append((r.model_extra or {}).get("trimmed"))
            messages.append({"role": "assistant", "content": r.choices[0].message.content})
        else:  # streamed: `trimmed` rides on the chunk that carries the finish_reason
            with client.chat.completions.create(model="qwen-tray", messages=messages, max_tokens=ANSWER,
                                                stream=True) as stream:
                chunks = list(stream)
            (fin,) = [c for c in chunks if c.choices and c.choices[0].finish_reason]
            seen.append((fin.model_extra or {}).get("trimmed"))
            assert all("trimmed" not in (c.model_extra or {}) for c in chunks if c is not fin)
            assert engine.results[-1].figures.prompt_tokens <= CONTEXT - ANSWER
    assert seen[0] is None  # absent when nothing was left out: the response is plain OpenAI
    assert seen[-1] is not None and seen[-1]["dropped_messages"][:2] == [0, 1]
    assert "left out" in seen[-1]["note"]


def test_on_the_npu_trimming_starts_earlier_and_keeps_to_its_prompt_limit(daemon) -> None:
    """npu.max_prompt_len = 300 with the language model "on the NPU": by the second follow-up the oldest
    turns give way (today's code sent the whole conversation and the NPU would refuse it)."""
    svc, info, engine = daemon(npu_max_prompt_len=300)
    assert svc.scheduler.status()["placement"]["language_device"] == "NPU"
    client = RawClient(info)
    history: list[dict] = []
    blobs: list[bytes] = []
    ends = []
    try:
        for turn in range(4):
            end = zmq_turn(client, f"n{turn}", history, blobs, f"Question {turn}?", png(turn), 60)
            assert end["event"] == "done", end
            ends.append(end)
            assert end["usage"]["prompt_tokens"] <= 300
    finally:
        client.close()
    assert ends[0]["trimmed"] is None
    assert ends[2]["trimmed"] is not None  # the second follow-up
    assert "NPU's prompt limit" in ends[2]["trimmed"]["note"] and ends[2]["trimmed"]["prompt_limit"] == 300


def test_what_cannot_fit_even_after_trimming_is_still_refused_and_long_histories_are_not(daemon) -> None:
    svc, info, engine = daemon(npu_max_prompt_len=300, http=True)
    client = RawClient(info)
    long_history = [{"role": "user", "content": "word " * 2000}, {"role": "assistant", "content": "word " * 2000}]
    try:
        # The question itself is over the NPU's prompt: the same refusal as before, before anything runs.
        client.send({"v": 1, "id": "big", "op": "generate",
                     "messages": [*long_history, {"role": "user", "content": "word " * 400}],
                     "options": {"max_new_tokens": 8}})
        (end,) = [m for m in client.until("big", ["rejected", "done", "error"]) if m["id"] == "big"]
        assert end["event"] == "rejected" and end["code"] == "too_large", end
        assert "300 tokens" in end["message"] and "NPU's prompt limit" in end["message"]
        # A long history with a short question is no longer refused: its older turns are left out.
        client.send({"v": 1, "id": "ok", "op": "generate",
                     "messages": [*long_history, {"role": "user", "content": "and now?"}],
                     "options": {"max_new_tokens": 8}})
        end = client.until("ok", ["rejected", "done", "error"], timeout=60)[-1]
        assert end["event"] == "done", end
        assert end["trimmed"]["dropped_messages"] == [0, 1] and end["usage"]["prompt_tokens"] <= 300
    finally:
        client.close()
    key = svc.paths.api_key_file.read_text().strip()
    r = httpx.post(f"{svc.http.url}/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                   json={"model": "qwen-tray", "max_tokens": 8,
                         "messages": [*long_history, {"role": "user", "content": "word " * 400}]})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text
    assert "NPU's prompt limit" in r.json()["error"]["message"]


def popup_job(history: list[Message], question: str, image: Image.Image | None, max_new_tokens: int) -> Job:
    """A job as the popup builds it: the screenshot on the first question only, priority interactive."""
    msg = Message("user", question, [image] if image is not None else [])
    return Job([*history, msg], GenerationOptions(max_new_tokens=max_new_tokens), RecordingSink(), "interactive",
               label="popup")


@pytest.mark.parametrize("npu", [False, True])
def test_the_popups_conversation_keeps_within_the_budget_on_the_scheduler(npu: bool) -> None:
    engine = TestEngine(language_device="NPU" if npu else None)
    s = Scheduler(lambda: engine, npu_max_prompt_len=300)
    s.start()
    answer = 100 if npu else 1000  # the popup's follow-ups are short: the answers make it grow
    limit = 300 if npu else CONTEXT - answer
    shot = Image.new("RGB", (1920, 1080), (10, 120, 30))
    history: list[Message] = []
    results = []
    try:
        assert wait_for(lambda: s.status()["state"] == "ready")
        for turn in range(4):
            j = popup_job(history, f"Follow-up {turn}?", shot if turn == 0 else None, answer)
            s.submit(j)
            assert j.sink.done.wait(120) and j.sink.result is not None, j.sink.error
            results.append(j.sink.result)
            assert j.sink.result.figures.prompt_tokens <= limit
            history += [j.messages[-1], Message("assistant", j.sink.result.text)]
    finally:
        s.stop()
    assert results[0].trimmed is None
    trimmed = [r.trimmed for r in results if r.trimmed is not None]
    assert trimmed
    # The screenshot (in the first turn) is the first to give way: shrunk, left out, or gone with its turn.
    first = trimmed[0]
    assert (0, 0) in first.shrunk_images + first.dropped_images or 0 in first.dropped_messages
    assert all(images_went_first(t.as_dict(), {(0, 0)}) for t in trimmed)
    # On the NPU by the second follow-up; on the CPU (larger answers, a 4096-token context) later.
    assert (results[2].trimmed is not None) == npu
    assert trimmed[-1].dropped_messages[:2] == (0, 1)
    assert json.dumps(trimmed[-1].as_dict())  # what the APIs send


def test_ask_in_process_refuses_a_question_past_the_context_and_reports_trimmed(tiny_model) -> None:  # noqa: ANN001
    """`ask --model` uses the same budget: a question past the context is a clear error (today it ran on past
    the model's context); an answer's JSON carries `trimmed` like the daemon's `done` (null for one question)."""
    import subprocess

    from conftest import qwen_tray_cmd

    def ask(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(qwen_tray_cmd() + ["ask", "--model", str(tiny_model), *args], capture_output=True,
                              text=True, timeout=120)

    r = ask("word " * 3000, "--max-new-tokens", "4")
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert "does not fit" in r.stderr and "4096 tokens" in r.stderr and "shorten it" in r.stderr
    assert "Traceback" not in r.stderr
    r = ask("what is this?", "--max-new-tokens", "4", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["trimmed"] is None
