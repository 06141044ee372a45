"""The trained demo model end to end: the answer names the colour of the pixels that reached the model.

A random model can only show that some text came out; this one (tests/fixtures/make_demo_model.py) says
"Mostly red. (This is qwen-tray's demo model: ...)" for a red image, so each test here fails if the wrong
pixels arrive: a BGRA/RGB swap says blue, an earlier turn's image names the earlier colour, a budget that
scaled the image to nothing names no colour. Both backends, in process, through the CLI and the daemon.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apitools import free_port
from conftest import qwen_tray_cmd, subprocess_env
from PIL import Image, ImageDraw
from servicetools import RawClient

from qwen_tray.engine.base import GenerationOptions, Message
from qwen_tray.engine.image_budget import fit_image, image_tokens
from qwen_tray.paths import bundled_model_dir, default_paths
from qwen_tray_client.client import Client, ClientError
from qwen_tray_client.connection import ConnectionFileError

RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
       "black": (0, 0, 0), "white": (255, 255, 255), "orange": (255, 140, 0), "purple": (128, 0, 128),
       "grey": (128, 128, 128)}  # fmt: skip
NOTE = " (This is qwen-tray's demo model: run `qwen-tray model pull` for real answers.)"


def answer(colour: str) -> str:
    return f"Mostly {colour}.{NOTE}"


def solid(colour: str, size: tuple[int, int] = (320, 240)) -> Image.Image:
    return Image.new("RGB", size, RGB[colour])


def png(tmp_path: Path, colour: str, size: tuple[int, int] = (320, 240)) -> Path:
    p = tmp_path / f"{colour}-{size[0]}x{size[1]}.png"
    solid(colour, size).save(p)
    return p


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*qwen_tray_cmd(), *args], capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env())


# -- in process, both backends -------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["genai", "optimum"])
def engine(request: pytest.FixtureRequest) -> Iterator:
    from conftest import DEMO_OV

    from qwen_tray.engine.loader import load_engine

    eng = load_engine(DEMO_OV, request.param, "CPU", available=["CPU"])
    yield eng
    eng.close()


def ask(engine, messages: list[Message], max_new_tokens: int = 80) -> str:  # noqa: ANN001
    res = engine.generate(messages, GenerationOptions(max_new_tokens=max_new_tokens), lambda _c: None,
                          threading.Event())
    assert res.finish_reason == "stop", res  # it ends with <|im_end|> after the sentence
    return res.text


def test_the_default_model_is_the_trained_demo(demo_model: Path) -> None:
    assert bundled_model_dir() == demo_model
    q = json.loads((demo_model / "openvino_config.json").read_text())["quantization_config"]
    lm = q["quantization_configs"]["lm_model"]  # exported as `model pull` exports
    assert (lm["bits"], lm["sym"], lm["group_size"], lm["ratio"]) == (4, True, 128, 1.0)


@pytest.mark.parametrize("colour", list(RGB))
def test_each_colour_is_named(engine, colour: str) -> None:  # noqa: ANN001
    assert ask(engine, [Message("user", "What is this?", [solid(colour)])]) == answer(colour)


@pytest.mark.parametrize("question", ["", "Describe what is on the screen.", "Explain this error", "2+2=?"])
def test_any_question_gets_the_colour(engine, question: str) -> None:  # noqa: ANN001
    assert ask(engine, [Message("user", question, [solid("green", (560, 180))])]) == answer("green")


def test_noise_text_and_a_second_colour_under_a_third_do_not_change_the_answer(engine) -> None:  # noqa: ANN001
    import numpy as np

    img = solid("blue", (640, 400))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 180, 399), fill=RGB["yellow"])  # 28 % of the area
    d.text((220, 40), "Traceback (most recent call last): ValueError", fill=(255, 255, 255))
    arr = np.asarray(img, dtype=np.float32) + np.random.default_rng(7).normal(0, 12, (400, 640, 3))
    noisy = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    assert ask(engine, [Message("user", "What is on the screen?", [noisy])]) == answer("blue")


@pytest.mark.parametrize("size", [(640, 24), (24, 640), (3840, 100), (1, 1), (33, 2000)])
def test_thin_strips_and_a_single_pixel_are_answered(engine, size: tuple[int, int]) -> None:  # noqa: ANN001
    """A dragged line of text is a thin strip; both backends' resizes must keep at least one row of patches."""
    assert ask(engine, [Message("user", "What is this?", [solid("orange", size)])]) == answer("orange")


def test_a_follow_up_with_a_new_image_answers_about_the_new_one(engine) -> None:  # noqa: ANN001
    first = Message("user", "What is this?", [solid("red")])
    convo = [first, Message("assistant", answer("red")), Message("user", "And this one?", [solid("blue")])]
    assert ask(engine, convo) == answer("blue")
    # A tiny first image (an icon) then a screen: with a 1-token minimum, VLMPipeline corrupted its heap here.
    convo = [Message("user", "What is this?", [solid("white", (32, 32))]), Message("assistant", answer("white")),
             Message("user", "And this one?", [solid("green", (342, 78))])]
    assert ask(engine, convo) == answer("green")
    # A follow-up without an image still talks about the (last) image of the conversation.
    convo = [first, Message("assistant", answer("red")), Message("user", "Are you sure?")]
    assert ask(engine, convo) == answer("red")


def test_a_4k_screenshot_scaled_by_the_image_budget_is_still_red(engine) -> None:  # noqa: ANN001
    shot = solid("red", (3840, 2160))
    for budget in (1280, 256, 16):  # CPU/GPU default, a tight NPU prompt, almost nothing
        fitted = fit_image(shot, budget)
        assert fitted.size != shot.size and image_tokens(*fitted.size) <= budget
        assert ask(engine, [Message("user", "What is on the screen?", [fitted])]) == answer("red")


# -- the CLI in process, both backends ------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["genai", "optimum"])
def test_ask_model_image_red_png_says_red(demo_model: Path, tmp_path: Path, backend: str) -> None:
    out = cli("ask", "--model", str(demo_model), "--backend", backend, "--device", "CPU", "--json",
              "--image", str(png(tmp_path, "red")), "What is in this picture?")
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    assert done["text"] == answer("red") and done["finish_reason"] == "stop"
    # The image budget's downscale of a 3840x2160 screenshot, as `ask` applies it.
    out = cli("ask", "--model", str(demo_model), "--backend", backend, "--image",
              str(png(tmp_path, "red", (3840, 2160))), "What is on the screen?")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == answer("red")


# -- through the daemon: the CLI and raw ZeroMQ frames --------------------------------------------------------
@pytest.fixture(params=["genai", "optimum"])
def daemon(request: pytest.FixtureRequest, demo_model: Path, tmp_path: Path) -> Iterator[Path]:
    """`qwen-tray run --headless` with no model configured: it serves the demo model with the given backend."""
    paths = default_paths()
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    # A free port for the HTTP API: the default one may be taken by another test's daemon.
    paths.config_file.write_text(f'[model]\nbackend = "{request.param}"\n[http]\nport = {free_port()}\n')
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen([*qwen_tray_cmd(), "run", "--headless"], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
            try:
                with Client(paths.connection_file, timeout=5) as c:
                    st = c.status()
                if st["state"] == "ready":
                    assert st["demo"] is True and st["model"] == demo_model.name, st
                    break
            except (OSError, ValueError, KeyError, ClientError, ConnectionFileError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()
            time.sleep(0.2)  # test-side wait for another process
        yield paths.connection_file
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_through_the_daemon_ask_image_says_red_and_the_4k_one_too(daemon: Path, tmp_path: Path) -> None:
    out = cli("ask", "--image", str(png(tmp_path, "red")), "What is this?")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == answer("red")
    out = cli("ask", "--json", "--image", str(png(tmp_path, "red", (3840, 2160))), "What is on the screen?")
    assert out.returncode == 0, out.stderr
    done = json.loads(out.stdout)
    assert done["text"] == answer("red") and done["demo"] is True


def test_raw_rgb_and_bgra_frames_of_a_red_screen_both_say_red(daemon: Path) -> None:
    w, h = 640, 360
    frames = {"RGB": bytes((255, 0, 0)) * (w * h), "BGRA": bytes((0, 0, 255, 255)) * (w * h)}
    c = RawClient(daemon)
    try:
        for mode, blob in frames.items():
            c.send({"v": 1, "id": mode, "op": "generate", "options": {"max_new_tokens": 80},
                    "messages": [{"role": "user", "content": [
                        {"type": "image", "blob": 0, "raw": {"width": w, "height": h, "mode": mode}},
                        {"type": "text", "text": "What is on the screen?"}]}]}, blob)
            done = c.until(mode, ["done", "error"], timeout=60)[-1]
            assert done["event"] == "done" and done["text"] == answer("red"), (mode, done)
    finally:
        c.close()


def test_a_follow_up_about_a_new_image_through_the_daemon(daemon: Path) -> None:
    with Client(daemon, timeout=60) as client:
        messages = [
            {"role": "user", "content": [{"type": "image", "blob": 0}, {"type": "text", "text": "What is this?"}]},
            {"role": "assistant", "content": answer("yellow")},
            {"role": "user", "content": [{"type": "image", "blob": 1}, {"type": "text", "text": "And now?"}]},
        ]
        blobs = []
        for colour in ("yellow", "purple"):
            import io

            buf = io.BytesIO()
            solid(colour, (400, 300)).save(buf, "PNG")
            blobs.append(buf.getvalue())
        done = client.generate(messages, blobs, max_new_tokens=80).wait()
    assert done["text"] == answer("purple")


def test_the_http_api_with_a_green_data_url_says_green(daemon: Path) -> None:
    """The OpenAI-compatible API, through the official `openai` client, sees the pixels of a data: URL."""
    import base64
    import io

    import openai

    with Client(daemon, timeout=30) as c:
        url = c.status()["http"]["url"]
    assert url, "the HTTP API must be on by default"
    key = default_paths().api_key_file.read_text().strip()
    buf = io.BytesIO()
    solid("green").save(buf, "PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=120)
    reply = client.chat.completions.create(
        model="qwen-tray", max_tokens=64,
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}},
                                               {"type": "text", "text": "What colour is this?"}]}])
    assert reply.choices[0].message.content == answer("green")
    assert reply.choices[0].finish_reason == "stop"
