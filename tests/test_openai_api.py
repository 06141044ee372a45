"""The OpenAI-compatible HTTP API end to end: the daemon's threads in-process, real sockets, the real tiny
engine (forced lengths, see servicetools), and clients nobody here wrote: the `openai` package, curl, httpx.

Every bad input of the ZeroMQ side (test_ipc_server.py's `_bad_inputs`) has its twin here, with the status
OpenAI clients expect.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import threading

import httpx
import openai
import pytest
from apitools import data_url, encoded, free_port, png, raw_http
from servicetools import TestEngine, shared_engine, wait_for
from test_ipc_server import png_header_only

from qwen_tray.config import Config
from qwen_tray.paths import default_paths
from qwen_tray.service import Service
from qwen_tray_client.client import Client

LONG = 3000


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    shared_engine()


class Api:
    def __init__(self, svc: Service, engine: TestEngine) -> None:
        self.svc = svc
        self.engine = engine
        self.port = svc.cfg.http.port
        self.base = f"http://127.0.0.1:{self.port}/v1"
        key_file = default_paths().api_key_file
        self.key = key_file.read_text().strip() if key_file.exists() else ""
        self.http = httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)

    def openai(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base, api_key=self.key, max_retries=0, **kw)

    def post(self, body: dict | bytes, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post("/chat/completions", content=content,
                              headers={"Content-Type": "application/json", **headers})


@pytest.fixture
def start_api():
    services: list[Service] = []
    clients: list[Api] = []

    def start(queue_size: int = 32, max_bytes: int = 1 << 20, engine: TestEngine | None = None,
              wait: bool = True, **http: object) -> Api:
        cfg = Config()
        cfg.server.queue_size = queue_size
        cfg.image.max_bytes = max_bytes
        cfg.http.port = free_port()
        for k, v in http.items():
            setattr(cfg.http, k, v)
        engine = engine or TestEngine()
        svc = Service(default_paths(), cfg, engine_factory=lambda _dir: engine)
        svc.start()
        services.append(svc)
        if wait:
            assert wait_for(lambda: svc.scheduler.status()["state"] == "ready")
        api = Api(svc, engine)
        clients.append(api)
        return api

    yield start
    for api in clients:
        api.http.close()
    for svc in services:
        svc.stop()


def ask(text: str = "hello there", max_tokens: int = 8, image: bytes | None = None, **kw: object) -> dict:
    content: object = text
    if image is not None:
        content = [{"type": "image_url", "image_url": {"url": data_url(image)}}, {"type": "text", "text": text}]
    return {"model": "qwen-tray", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, **kw}


# ---------------------------------------------------------------- the openai package


def test_openai_client_not_streamed_with_an_image(start_api) -> None:
    api = start_api()
    client = api.openai()
    models = [m.id for m in client.models.list()]
    assert models == ["tiny-qwen3-vl-ov", "qwen-tray"]
    r = client.chat.completions.create(
        model=models[0],
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": [
                      {"type": "image_url", "image_url": {"url": data_url(png(64, 48)), "detail": "auto"}},
                      {"type": "text", "text": "What is this?"}]}],
        max_completion_tokens=7, temperature=0, top_p=1,
    )
    assert r.object == "chat.completion" and r.model == models[0] and r.id.startswith("chatcmpl-")
    (choice,) = r.choices
    assert choice.finish_reason == "length" and choice.message.role == "assistant"
    assert choice.message.content == api.engine.results[-1].text
    assert r.usage.completion_tokens == 7 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + 7
    assert api.engine.image_sizes[-1] == [(64, 48)]  # the image reached the engine
    assert "Be brief." in api.engine.prompts[-1]


@pytest.mark.parametrize("fmt,mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"),
                                      ("BMP", "image/bmp")])
def test_each_image_format_in_a_data_url(start_api, fmt: str, mime: str) -> None:
    api = start_api()
    r = api.post({**ask("what?", 2), "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(encoded(fmt), mime)}}]}]})
    assert r.status_code == 200, r.text
    assert api.engine.image_sizes[-1] == [(80, 60)]  # more than one token: no 2x2 floor (image_budget)


def test_openai_client_streamed_with_usage(start_api) -> None:
    api = start_api()
    client = api.openai()
    with client.chat.completions.create(model="qwen-tray", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(png())}}, {"type": "text", "text": "hi"}]}],
            max_tokens=12, stream=True, stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == api.engine.results[-1].text
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_closing_the_stream_cancels_the_generation(start_api) -> None:
    api = start_api()
    client = api.openai()
    with client.chat.completions.create(model="qwen-tray", messages=[{"role": "user", "content": "go on"}],
                                        max_tokens=LONG, stream=True) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break  # leaving the `with` closes the response
    assert wait_for(lambda: len(api.engine.results) == 1, timeout=30)
    result = api.engine.results[0]
    assert result.finish_reason == "cancelled" and result.figures.completion_tokens < LONG
    r = client.chat.completions.create(model="qwen-tray", messages=[{"role": "user", "content": "next"}], max_tokens=3)
    assert r.choices[0].finish_reason == "length"  # the worker is free again


def test_a_client_that_leaves_before_a_whole_answer_cancels_it(start_api) -> None:
    api = start_api()
    body = json.dumps(ask("long", LONG)).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\nAuthorization: Bearer {api.key}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", api.port)) as s:
        s.sendall(head + body)
        assert wait_for(lambda: api.svc.scheduler.status()["state"] == "busy")
    assert wait_for(lambda: len(api.engine.results) == 1, timeout=30)
    assert api.engine.results[0].finish_reason == "cancelled"
    assert api.engine.results[0].figures.completion_tokens < LONG


# ---------------------------------------------------------------- curl


def curl(api: Api, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--no-buffer", "-H", f"Authorization: Bearer {api.key}",
                           "-H", "Content-Type: application/json", *args], capture_output=True, text=True, timeout=60)


def test_curl_streamed_and_not(start_api) -> None:
    api = start_api()
    r = curl(api, f"{api.base}/chat/completions", "-d", json.dumps(ask("hi", 5)))
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["choices"][0]["finish_reason"] == "length" and answer["usage"]["completion_tokens"] == 5
    r = curl(api, f"{api.base}/chat/completions", "-d", json.dumps(ask("hi", 5, stream=True)))
    events = [e for e in r.stdout.split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == api.engine.results[-1].text
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    r = subprocess.run(["curl", "-sS", "-i", f"{api.base}/models"], capture_output=True, text=True, timeout=30)
    assert r.stdout.startswith("HTTP/1.1 401") and '"type":"authentication_error"' in r.stdout


# ---------------------------------------------------------------- bad input: the ZeroMQ side's twins


def _bad_inputs(max_bytes: int) -> list[tuple[str, bytes, int, str]]:
    """(what, body, status, code): the twins of test_ipc_server._bad_inputs, in OpenAI's terms."""
    def j(obj: dict) -> bytes:
        return json.dumps(obj).encode()

    def image_req(url: str) -> bytes:
        return j({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                            {"type": "text", "text": "what?"}]}]})

    truncated = png(64, 64)
    from test_ipc_server import png as noisy_png
    truncated = noisy_png(64, 64, noise=True)
    return [
        ("not JSON", b"{this is not json", 400, "bad_request"),
        ("not an object", b"[1, 2, 3]", 400, "bad_request"),
        ("NaN", b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}', 400, "bad_request"),
        ("Infinity", b'{"messages": [{"role": "user", "content": "x"}], "top_p": Infinity}', 400, "bad_request"),
        ("duplicate key", b'{"messages": [], "messages": []}', 400, "bad_request"),
        ("nested too deep", b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "bad_request"),
        ("not UTF-8", b'{"messages": "\xff"}', 400, "bad_request"),
        ("mistyped field", j(ask(max_tokens="5")), 400, "bad_request"),
        ("max_tokens 0", j(ask(max_tokens=0)), 400, "bad_request"),
        ("negative temperature", j(ask(temperature=-1)), 400, "bad_request"),
        ("top_p over 1", j(ask(top_p=1.5)), 400, "bad_request"),
        ("too many stop strings", j(ask(stop=["s"] * 17)), 400, "bad_request"),
        ("missing messages", j({"model": "qwen-tray"}), 400, "bad_request"),
        ("empty messages", j({"messages": []}), 400, "bad_request"),
        ("empty message", j({"messages": [{"role": "user", "content": ""}]}), 400, "bad_request"),
        ("unknown role", j({"messages": [{"role": "tool", "content": "x"}]}), 400, "bad_request"),
        ("last message not the user's", j({"messages": [{"role": "user", "content": "q"},
                                                        {"role": "assistant", "content": "a"}]}), 400, "bad_request"),
        ("unknown field", j(ask(foo=1)), 400, "bad_request"),
        ("unsupported n", j(ask(n=2)), 400, "bad_request"),
        ("tools", j(ask(tools=[])), 400, "bad_request"),
        ("stream_options without stream", j(ask(stream_options={"include_usage": True})), 400, "bad_request"),
        ("unknown part type", j({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}), 400,
         "bad_request"),
        ("image_url without a url", j({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"detail": "auto"}}]}]}), 400, "bad_request"),
        ("image not base64", image_req("data:image/png;base64,@@@@"), 400, "bad_image"),
        ("image not an image", image_req(data_url(b"GIF89a definitely not a picture")), 400, "bad_image"),
        ("image not an image type", image_req(data_url(b"abc", "text/plain")), 400, "bad_image"),
        ("empty image", image_req("data:image/png;base64,"), 400, "bad_image"),
        ("truncated image", image_req(data_url(truncated[: len(truncated) // 2])), 400, "bad_image"),
        ("web image URL (not fetched)", image_req("https://example.invalid/a.png"), 400, "bad_request"),
        ("local file path", image_req("/etc/passwd"), 400, "bad_request"),
        ("file: URL", image_req("file:///etc/passwd"), 400, "bad_request"),
        ("decompression bomb", image_req(data_url(png_header_only(30000, 30000))), 413, "too_large"),
        ("over the pixel limit", image_req(data_url(png_header_only(9000, 9000))), 413, "too_large"),
        ("image over the byte limit", image_req(data_url(b"\0" * (max_bytes + 1))), 413, "too_large"),
        ("body over its limit", b'{"x": "' + b"a" * (3 * max_bytes + (1 << 20)) + b'"}', 413, "too_large"),
        ("text longer than the context (tokenized)", j(ask("word " * 5000)), 413, "too_large"),
        ("text longer than the context (by size)", j(ask("x" * 40000)), 413, "too_large"),
        ("unknown model", j(ask(model="gpt-4o")), 404, "not_found"),
    ]


def test_every_bad_input_is_refused_with_its_status_and_the_daemon_goes_on(start_api) -> None:
    max_bytes = 1 << 20
    api = start_api(max_bytes=max_bytes)
    with Client(api.svc.connection_file) as bystander:
        answer = bystander.ask(None, "a request of another client", max_new_tokens=600)
        for what, body, status, code in _bad_inputs(max_bytes):
            r = api.post(body)
            assert r.status_code == status, (what, r.status_code, r.text)
            err = r.json()["error"]
            assert err["code"] == code and len(err["message"]) > 20, (what, err)
            assert set(err) == {"message", "type", "param", "code"}
        assert not any("word word" in p or "xxxx" in p for p in api.engine.prompts)  # none reached the engine
        r = api.post(ask("and now a good one", 5))
        assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "length"
        assert answer.wait()["usage"]["completion_tokens"] == 600  # the other client was not disturbed


def test_the_same_option_values_are_refused_by_both_apis(start_api) -> None:
    """One rule: what ZeroMQ refuses as options.X, HTTP refuses as X (and the reverse), same sentence."""
    api = start_api()
    with Client(api.svc.connection_file) as client:
        for key, http_key, value in (("max_new_tokens", "max_tokens", 0), ("temperature", "temperature", -0.5),
                                     ("top_p", "top_p", 0), ("stop", "stop", [""])):
            from qwen_tray_client.client import RequestRejected

            with pytest.raises(RequestRejected) as zmq_err:
                client.ask(None, "x", **{key: value})
            http_err = api.post(ask(**{http_key: value})).json()["error"]["message"]
            assert zmq_err.value.message.split(" ", 1)[1] == http_err.split(" ", 1)[1], (zmq_err.value.message,
                                                                                         http_err)


def test_a_full_queue_answers_429_with_retry_after(start_api) -> None:
    api = start_api(queue_size=1)
    with Client(api.svc.connection_file) as client:
        running = client.ask(None, "runs", max_new_tokens=LONG)
        assert wait_for(lambda: api.svc.scheduler.status()["state"] == "busy")
        waiting = client.ask(None, "waits", max_new_tokens=2)
        r = api.post(ask())
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "rate_limit_error"
        with pytest.raises(openai.RateLimitError):
            api.openai().chat.completions.create(model="qwen-tray", messages=[{"role": "user", "content": "x"}])
        running.cancel()
        running.wait()
        waiting.wait()


def test_503_while_the_model_loads_and_while_stopping(start_api) -> None:
    release = threading.Event()
    inner = TestEngine()

    def slow_engine(_dir):
        release.wait(30)
        return inner

    cfg = Config()
    cfg.http.port = free_port()
    svc = Service(default_paths(), cfg, engine_factory=slow_engine)
    svc.start()
    try:
        api = Api(svc, inner)
        r = api.post(ask())
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert "loading" in r.json()["error"]["message"]
        release.set()
        assert wait_for(lambda: svc.scheduler.status()["state"] == "ready")
        # stopping: a stream in progress ends with an error event; a new request would get 503
        with api.http.stream("POST", "/chat/completions", json=ask("long", LONG, stream=True)) as resp:
            lines = resp.iter_lines()
            assert next(line for line in lines if line.startswith("data: ")) is not None
            stopper = threading.Thread(target=svc.stop)
            stopper.start()
            rest = [line for line in lines if line.startswith("data: ")]
        stopper.join(30)
        error = json.loads(rest[-1][6:])["error"]
        assert error["code"] == "shutting_down" and error["type"] == "service_unavailable"
        # The stream's first line goes out before the job starts: a stop may end it still queued (the engine
        # never sees it) or at its next token; either way it does not run on to LONG.
        assert not inner.results or inner.results[-1].figures.completion_tokens < LONG
        api.http.close()
    finally:
        release.set()
        svc.stop()


# ---------------------------------------------------------------- trust


def test_trust_key_host_origin_and_loopback_only(start_api) -> None:
    api = start_api(allowed_origins=["http://localhost:3000"])
    key_file = default_paths().api_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    url = f"{api.base}/models"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": api.key}).status_code == 401  # no "Bearer"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=api.base, api_key="wrong", max_retries=0).models.list()
    ok = {"Authorization": f"Bearer {api.key}"}
    assert httpx.get(url, headers=ok).status_code == 200
    assert httpx.get(f"http://localhost:{api.port}/v1/models", headers=ok).status_code == 200
    # DNS rebinding: a page at attacker.example resolved to 127.0.0.1 sends its own Host
    for host in ("attacker.example", f"attacker.example:{api.port}", "127.0.0.1", f"127.0.0.1:{api.port + 1}"):
        r = httpx.get(url, headers={**ok, "Host": host})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", host
    r = raw_http(api.port, b"GET /v1/models HTTP/1.0\r\nAuthorization: Bearer " + api.key.encode() + b"\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 403")  # no Host at all
    # browsers: a page's Origin is refused unless allowed; no CORS headers either way
    r = httpx.get(url, headers={**ok, "Origin": "https://evil.example"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = httpx.options(f"{api.base}/chat/completions", headers={"Origin": "https://evil.example",
                                                               "Access-Control-Request-Method": "POST"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = httpx.get(url, headers={**ok, "Origin": "http://localhost:3000"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    # 404s in OpenAI's shape, but only for those who hold the key
    assert httpx.get(f"{api.base}/nothing").status_code == 401
    r = httpx.get(f"{api.base}/nothing", headers=ok)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert httpx.get(f"{api.base}/models/gpt-4o", headers=ok).status_code == 404
    assert httpx.get(f"{api.base}/models/qwen-tray", headers=ok).json()["id"] == "qwen-tray"
    assert httpx.get(f"{api.base}/chat/completions", headers=ok).status_code == 405
    # bound to the loopback address only
    listening = [c for c in __import__("psutil").net_connections("tcp")
                 if c.status == "LISTEN" and c.laddr.port == api.port]
    assert [c.laddr.ip for c in listening] == ["127.0.0.1"]


def test_the_key_is_made_once_and_kept(start_api, tmp_path) -> None:
    from conftest import qwen_tray_cmd, subprocess_env

    r = subprocess.run(qwen_tray_cmd() + ["api-key"], capture_output=True, text=True, env=subprocess_env())
    key = r.stdout.strip()
    assert r.returncode == 0 and len(key) > 40
    api = start_api()
    assert api.key == key  # the daemon took the existing key
    api.svc.stop()
    api2 = start_api()
    assert api2.key == key
    r = subprocess.run(qwen_tray_cmd() + ["config", "--json"], capture_output=True, text=True, env=subprocess_env())
    assert json.loads(r.stdout)["paths"]["api_key"] == str(default_paths().api_key_file)


def test_a_taken_port_leaves_the_http_api_off_and_the_rest_on(start_api) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        cfg = Config()
        cfg.http.port = port
        svc = Service(default_paths(), cfg, engine_factory=lambda _dir: TestEngine())
        svc.start()
        try:
            with Client(svc.connection_file) as client:
                st = client.status()
                assert st["http"]["url"] is None and f"port {port}" in st["http"]["error"]
                assert client.ask(None, "still answers", max_new_tokens=2).wait()["finish_reason"] == "length"
        finally:
            svc.stop()


def test_http_off_in_the_config(start_api) -> None:
    api = start_api(enabled=False)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api.base}/models")
    with Client(api.svc.connection_file) as client:
        assert "enabled = false" in client.status()["http"]["error"]


def test_web_image_urls_are_fetched_only_when_configured(start_api, tmp_path) -> None:
    import http.server

    (tmp_path / "a.png").write_bytes(png(90, 60))
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **kw)  # noqa: E731
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{web.server_address[1]}/a.png"
        body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
                "max_tokens": 2}
        api = start_api(fetch_image_urls=True)
        r = api.post(body)
        assert r.status_code == 200, r.text
        assert api.engine.image_sizes[-1] == [(90, 60)]
        r = api.post({**body, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url.replace("a.png", "missing.png")}}]}]})
        assert r.status_code == 400 and "404" in r.json()["error"]["message"]
    finally:
        web.shutdown()
        web.server_close()


def test_status_shows_the_url(start_api) -> None:
    from conftest import qwen_tray_cmd, subprocess_env

    api = start_api()
    r = subprocess.run(qwen_tray_cmd() + ["status"], capture_output=True, text=True, env=subprocess_env())
    assert f"http:      http://127.0.0.1:{api.port}/v1" in r.stdout, r.stdout
    assert os.path.exists(default_paths().api_key_file)


def test_an_engine_failure_reaches_the_client_and_the_next_request_works(start_api) -> None:
    api = start_api(engine=TestEngine(fail_on="BOOM"))
    r = api.post(ask("BOOM", 4))
    assert r.status_code == 500 and r.json()["error"]["code"] == "engine_error"
    assert "on purpose" in r.json()["error"]["message"]
    with pytest.raises(openai.APIError, match="on purpose"), api.openai().chat.completions.create(
            model="qwen-tray", messages=[{"role": "user", "content": "BOOM"}], max_tokens=4, stream=True) as s:
        list(s)
    assert api.post(ask("fine", 2)).status_code == 200


def test_an_internal_error_costs_one_request_not_the_server(start_api, monkeypatch) -> None:
    import qwen_tray.openai_api.app as app_module

    api = start_api()
    real = app_module.chat_request
    monkeypatch.setattr(app_module, "chat_request", lambda *a, **kw: 1 / 0)
    r = api.post(ask())
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
    assert "internal error" in r.json()["error"]["message"]
    monkeypatch.setattr(app_module, "chat_request", real)
    assert api.post(ask("and again", 2)).status_code == 200



def test_responses_are_not_held_back_by_nagle(start_api) -> None:
    """asyncio turns Nagle off only on accepted sockets whose listening socket says IPPROTO_TCP; without it
    every request on a kept-alive connection waited ~40 ms for a delayed ACK (found by bench/http_api.py)."""
    api = start_api()
    assert api.http.get("/models").status_code == 200  # the connection stays open (keep-alive)
    server = api.svc.http._server._server  # uvicorn's Server
    connections = list(server.server_state.connections)
    assert connections
    for conn in connections:
        sock = conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
