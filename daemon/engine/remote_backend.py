"""`model.backend = "openai"`: an OpenAI-compatible server answers instead of a local model.

For a team that puts one bigger model on a server (OpenVINO Model Server, vLLM, Ollama, LM
Studio, or another qwen-tray's HTTP API): the popup, the CLI and both local APIs keep going
through the one scheduler, and this engine forwards each job as a streamed
`/chat/completions` request (images as PNG `data:` URLs). Cancel closes the stream, which the
server sees as a disconnect. httpx, not the `openai` package: one small, well-kept HTTP client
(no pydantic) is all that streaming SSE needs. Errors become `EngineError` with a sentence that
says whether the server is down, refused the key, refused the request, or broke mid-answer.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .base import EngineError, Figures, GenerationOptions, GenerationResult, Message, OnChunk
from .placement import Placement

log = logging.getLogger(__name__)

MAX_ERROR_BODY = 64 * 1024


class RemotePlacement(Placement):
    """Where a remote answer comes from; `summary()` is what status and the tray show."""

    def summary(self) -> str:
        return self.reason


def _png_data_url(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our messages -> OpenAI's: images (PNG data: URLs) before the text, as in the ZeroMQ protocol."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if not m.images:
            out.append({"role": m.role, "content": m.text})
            continue
        parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": _png_data_url(i)}}
                                       for i in m.images]
        if m.text:
            parts.append({"type": "text", "text": m.text})
        out.append({"role": m.role, "content": parts})
    return out


def _error_message(response: httpx.Response) -> str:
    """The server's own error text (OpenAI's {"error": {"message"}}, or whatever it sent)."""
    try:
        body = response.read()[:MAX_ERROR_BODY]
    except httpx.HTTPError:
        return ""
    try:
        obj = json.loads(body)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
        if isinstance(obj, dict) and isinstance(obj.get("detail"), str):
            return obj["detail"]
    except ValueError:
        pass
    return body.decode("utf-8", "replace").strip()[:300]


class RemoteEngine:
    """One OpenAI-compatible server behind the Engine interface (one request at a time, like the others)."""

    backend = "openai"

    def __init__(self, remote: Any) -> None:
        if remote is None or not getattr(remote, "base_url", "") or not getattr(remote, "model", ""):
            raise EngineError('model.backend "openai" needs remote.base_url and remote.model in the config')
        self.base_url = remote.base_url.rstrip("/")
        self.model = remote.model
        self.model_dir = self.base_url
        self.host = urlsplit(self.base_url).netloc or self.base_url
        self.placement = RemotePlacement(requested="remote", available=[], name="remote", language_device="remote",
                                         vision_device="remote", reason=f"remote: {self.host}, {self.model}")
        headers = {"Accept": "text/event-stream, application/json"}
        if remote.api_key_file:
            try:
                key = Path(remote.api_key_file).expanduser().read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise EngineError(f"remote.api_key_file {remote.api_key_file} cannot be read: {exc.strerror}") from None
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(connect=remote.connect_timeout_s, read=remote.read_timeout_s,
                                write=remote.read_timeout_s, pool=remote.connect_timeout_s)
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, trust_env=False)
        try:
            self._check()
        except BaseException:
            self._client.close()
            raise

    def _where(self) -> str:
        return f"the remote server {self.host}"

    def _check(self) -> None:
        """At load: is the server there, does it take our key? (Its model list need not name our model:
        some servers list nothing, or load models on demand.)"""
        try:
            response = self._client.get("/models")
        except httpx.TimeoutException as exc:
            raise EngineError(f"{self._where()} did not answer in time ({type(exc).__name__}) at "
                              f"{self.base_url}") from None
        except httpx.HTTPError as exc:
            raise EngineError(f"{self._where()} is not reachable ({_reason(exc)}): is it running at "
                              f"{self.base_url}?") from None
        if response.status_code in (401, 403):
            raise EngineError(f"{self._where()} refused the API key (HTTP {response.status_code}): "
                              f"{_error_message(response)} (check remote.api_key_file)")
        if response.status_code >= 500:
            raise EngineError(f"{self._where()} is not ready (HTTP {response.status_code}): "
                              f"{_error_message(response)}")
        log.info("remote server %s answers (%s); model %s", self.base_url, response.status_code, self.model)

    def count_text_tokens(self, text: str) -> int:
        """An estimate (about 4 bytes per token): the server has the tokenizer; this sizes image budgets only."""
        return max(1, len(text.encode("utf-8")) // 4)

    def _payload(self, messages: Sequence[Message], options: GenerationOptions) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": wire_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
        }
        if options.temperature > 0:
            payload["top_p"] = options.top_p
        if options.stop:
            payload["stop"] = list(options.stop)
        return payload

    def generate(self, messages: Sequence[Message], options: GenerationOptions, on_chunk: OnChunk,
                 cancel: threading.Event) -> GenerationResult:
        started = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        finish: str | None = None
        usage: dict[str, Any] = {}
        payload = self._payload(messages, options)
        answering = False  # the server has sent the response's head
        try:
            with self._client.stream("POST", "/chat/completions", json=payload) as response:
                answering = True
                if response.status_code != 200:
                    raise EngineError(self._refusal(response))
                for line in response.iter_lines():
                    if cancel.is_set():
                        finish = "cancelled"
                        break  # leaving the `with` closes the stream: the server sees the client go
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    obj = json.loads(data)
                    if isinstance(obj.get("error"), dict | str):
                        err = obj["error"]
                        text = err.get("message", "") if isinstance(err, dict) else err
                        raise EngineError(f"{self._where()} failed mid-answer: {text}")
                    if isinstance(obj.get("usage"), dict):
                        usage = obj["usage"]
                    for choice in obj.get("choices") or []:
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            if first is None:
                                first = time.perf_counter()
                            pieces.append(content)
                            on_chunk(content)
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        except httpx.ConnectError as exc:
            raise EngineError(f"{self._where()} is not reachable ({_reason(exc)}): is it running at "
                              f"{self.base_url}?") from None
        except httpx.TimeoutException as exc:
            raise EngineError(f"{self._where()} did not answer in time ({type(exc).__name__}; "
                              "remote.read_timeout_s is the longest silence allowed)") from None
        except httpx.HTTPError as exc:
            if not answering:  # e.g. a kept-alive connection the server closed when it went away
                raise EngineError(f"{self._where()} is not reachable ({_reason(exc)}): is it running at "
                                  f"{self.base_url}?") from None
            raise EngineError(f"the connection to {self._where()} broke mid-answer ({_reason(exc)})") from None
        except ValueError:
            raise EngineError(f"{self._where()} sent something that is not an OpenAI stream") from None
        if finish is None:
            raise EngineError(f"{self._where()} ended the answer without saying it was finished "
                              "(the connection closed early)")
        end = time.perf_counter()
        n = int(usage.get("completion_tokens") or len(pieces))
        first = first or end
        decode_s = end - first
        figures = Figures(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=n,
            ttft_ms=round((first - started) * 1000.0, 2),
            total_ms=round((end - started) * 1000.0, 2),
            tokens_per_s=round((n - 1) / decode_s, 2) if n > 1 and decode_s > 0 else 0.0,
        )
        reason = finish if finish in ("stop", "length", "cancelled") else "stop"
        return GenerationResult("".join(pieces), reason, figures)  # type: ignore[arg-type]

    def _refusal(self, response: httpx.Response) -> str:
        status, message = response.status_code, _error_message(response)
        if status in (401, 403):
            return f"{self._where()} refused the API key (HTTP {status}): {message}"
        if status == 429:
            return f"{self._where()} is busy (HTTP 429): {message}"
        if status == 503:
            return f"{self._where()} is not ready (HTTP 503): {message}"
        return f"{self._where()} refused the request (HTTP {status}): {message}"

    def close(self) -> None:
        self._client.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
