"""The Starlette app: `POST /v1/chat/completions` (streamed or not), `GET /v1/models`, OpenAI's error shape.

A request passes the gate (Host, Origin, key: auth.py) before anything else, then its body is
read under a size bound, converted and checked (convert.py, qwen_tray.admission), and submitted
to the one scheduler at priority `background`, like a ZeroMQ request. Job events come from the
worker thread through `loop.call_soon_threadsafe` into an asyncio queue; nothing polls. A client
that goes away cancels its job: streamed, Starlette cancels the response when uvicorn reports
the disconnect; not streamed, a task waits on `receive()` for `http.disconnect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..admission import Admission, Refused, submit
from ..engine.base import GenerationResult
from ..jobs import Job
from .auth import Gate
from .convert import ChatRequest, chat_request, image_urls, parse_body

log = logging.getLogger(__name__)

ALIAS = "qwen-tray"  # a model id that always names whatever this daemon serves
# (status, OpenAI error type) per refusal or failure code
STATUS = {
    "bad_request": (400, "invalid_request_error"),
    "bad_image": (400, "invalid_request_error"),
    "unauthorized": (401, "authentication_error"),
    "forbidden": (403, "permission_error"),
    "not_found": (404, "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error"),
    "too_large": (413, "invalid_request_error"),
    "busy": (429, "rate_limit_error"),
    "engine_error": (500, "server_error"),
    "loading": (503, "service_unavailable"),
    "shutting_down": (503, "service_unavailable"),
    "timeout": (504, "server_error"),
}
INTERNAL = "the daemon could not handle this request (an internal error, see the daemon's log)"
RETRY_AFTER = {"busy": "1", "loading": "5", "shutting_down": "5"}


def error_body(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": STATUS[code][1], "param": param, "code": code}}


def error_response(code: str, message: str) -> JSONResponse:
    headers = {"Retry-After": RETRY_AFTER[code]} if code in RETRY_AFTER else None
    if code == "unauthorized":
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(error_body(code, message), status_code=STATUS[code][0], headers=headers)


@dataclass
class ApiState:
    """What the app needs of the daemon."""

    scheduler: Any
    admission: Admission
    gate: Gate
    model_name: Callable[[], str]
    fetch_image_urls: bool = False
    closing: bool = False
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def max_body(self) -> int:
        """Images travel as base64 in the JSON: room for two at the byte limit, plus text."""
        return 3 * self.admission.max_bytes + (1 << 20)


class Gatekeeper:
    """Pure ASGI: Host, Origin and key checks before routing (so nothing is revealed, not even a 404);
    and the Date header that uvicorn no longer adds (see server.py)."""

    def __init__(self, app: ASGIApp, state: ApiState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        gate = self.state.gate
        problem = gate.host(headers.get("host")) or gate.origin(headers.get("origin"))
        code = "forbidden"
        if problem is None and (problem := gate.key(headers.get("authorization"))) is not None:
            code = "unauthorized"
        client = scope.get("client")
        if problem is not None:
            log.info("http %s %s from %s: refused (%s)", scope["method"], scope["path"][:100],
                     client and f"{client[0]}:{client[1]}", code)
            await _with_date(error_response(code, problem), scope, receive, send)
            return

        async def send_with_date(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"date", formatdate(usegmt=True).encode())]
            await send(message)

        await self.app(scope, receive, send_with_date)


async def _with_date(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    response.headers["date"] = formatdate(usegmt=True)
    await response(scope, receive, send)


class _Sink:
    """Job events (worker thread) -> the request's asyncio queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        self._loop = loop
        self._queue = queue

    def _put(self, item: tuple[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server stopped, nobody listens
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def on_start(self) -> None:
        pass

    def on_chunk(self, text: str) -> None:
        self._put(("chunk", text))

    def on_done(self, result: GenerationResult, queue_ms: float, demo: bool) -> None:
        self._put(("done", result))

    def on_error(self, code: str, message: str, partial_text: str) -> None:
        self._put(("error", (code, message, partial_text)))


def _usage(result: GenerationResult) -> dict[str, int]:
    f = result.figures
    return {"prompt_tokens": f.prompt_tokens, "completion_tokens": f.completion_tokens,
            "total_tokens": f.prompt_tokens + f.completion_tokens}


def _finish(result: GenerationResult) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def create_app(state: ApiState) -> ASGIApp:
    async def models(request: Request) -> Response:
        data = [{"id": mid, "object": "model", "created": state.created, "owned_by": "qwen-tray"}
                for mid in _model_ids()]
        return JSONResponse({"object": "list", "data": data})

    async def model(request: Request) -> Response:
        mid = request.path_params["model"]
        if mid not in _model_ids():
            return error_response("not_found", f"no model {mid[:100]!r} here: GET /v1/models lists it")
        return JSONResponse({"id": mid, "object": "model", "created": state.created, "owned_by": "qwen-tray"})

    def _model_ids() -> list[str]:
        name = state.model_name()
        return [name, ALIAS] if name and name != ALIAS else [ALIAS]

    async def chat(request: Request) -> Response:
        client = request.client
        label = f"http {client.host}:{client.port}" if client else "http"
        started = time.perf_counter()
        try:
            unavailable = _unavailable()
            if unavailable is not None:
                return error_response(*unavailable)
            body = await _read_body(request, state.max_body)
            obj = parse_body(body)
            fetched = await _fetch_images(obj) if state.fetch_image_urls else {}
            req = await asyncio.to_thread(chat_request, obj, state.admission, state.model_name(), fetched)
            if req.model not in _model_ids():
                return error_response("not_found", f"no model {req.model[:100]!r} here: this server serves "
                                      f"{' or '.join(repr(m) for m in _model_ids())} (GET /v1/models)")
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue = asyncio.Queue()
            cid = "chatcmpl-" + secrets.token_hex(12)
            label = f"{label} id {cid}"
            job = Job(req.messages, req.options, _Sink(loop, queue), "background", label)
            position = submit(state.scheduler, job)
        except Refused as exc:
            log.info("%s: rejected %s: %s", label, exc.code, exc.message)
            return error_response(exc.code, exc.message)
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception:  # noqa: BLE001 - a bug costs this request, not the connection or the server
            log.exception("%s: internal error", label)
            return error_response("engine_error", INTERNAL)
        n_images = sum(len(m.images) for m in req.messages)
        log.info("%s: accepted at %d (background, %d messages, %d images, %d text chars, max_new_tokens %d, "
                 "stream %s, checked in %.1f ms)", label, position, len(req.messages), n_images,
                 sum(len(m.text) for m in req.messages), req.options.max_new_tokens, req.stream,
                 (time.perf_counter() - started) * 1000.0)
        if req.stream:
            return StreamingResponse(_stream(job, queue, req, cid), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await _complete(request, job, queue, req, cid)

    def _unavailable() -> tuple[str, str] | None:
        if state.closing:
            return "shutting_down", "the daemon is shutting down"
        st = state.scheduler.status()
        if st.get("state") == "loading" and not st.get("placement"):
            return "loading", "the model is loading; try again in a few seconds"
        return None

    async def _fetch_images(obj: dict[str, Any]) -> dict[str, bytes]:
        from .fetch import fetch_all

        return await fetch_all(image_urls(obj, lambda u: u.lower().startswith(("http://", "https://"))),
                               state.admission.max_bytes)

    async def _complete(request: Request, job: Job, queue: asyncio.Queue, req: ChatRequest, cid: str) -> Response:
        async def terminal() -> tuple[str, Any]:
            while True:
                kind, value = await queue.get()
                if kind != "chunk":
                    return kind, value

        ended = asyncio.ensure_future(terminal())
        gone = asyncio.ensure_future(_disconnected(request.receive))
        try:
            await asyncio.wait({ended, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not ended.done():
                log.info("%s: the client left before the answer: cancelling", job.label)
                state.scheduler.cancel(job)
            kind, value = await ended  # cancel ends the job at its next token
        finally:
            gone.cancel()
            if not ended.done():  # this handler itself was cancelled (server stopping)
                state.scheduler.cancel(job)
                ended.cancel()
        if kind == "error":
            code, message, _ = value
            return error_response(code if code in STATUS else "engine_error", message)
        result: GenerationResult = value
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": int(time.time()), "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text, "refusal": None},
                         "logprobs": None, "finish_reason": _finish(result)}],
            "usage": _usage(result), "system_fingerprint": None,
        })

    async def _stream(job: Job, queue: asyncio.Queue, req: ChatRequest, cid: str) -> AsyncIterator[bytes]:
        created = int(time.time())
        usage_null = {"usage": None} if req.include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model,
                   "system_fingerprint": None,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                   **usage_null}
            return sse(obj)

        finished = False
        try:
            yield chunk({"role": "assistant", "content": ""})
            while True:
                kind, value = await queue.get()
                if kind == "chunk":
                    yield chunk({"content": value})
                    continue
                finished = True
                if kind == "error":
                    code, message, _ = value
                    yield sse(error_body(code if code in STATUS else "engine_error", message))
                    return
                result: GenerationResult = value
                yield chunk({}, _finish(result))
                if req.include_usage:
                    yield sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model,
                               "system_fingerprint": None, "choices": [], "usage": _usage(result)})
                yield b"data: [DONE]\n\n"
                return
        finally:
            if not finished:  # the client went away (Starlette cancelled us) or the server is stopping
                log.info("%s: the client left mid-stream: cancelling", job.label)
                state.scheduler.cancel(job)

    async def not_found(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            return error_response("method_not_allowed", f"{request.method} is not allowed on {request.url.path}")
        return error_response("not_found", f"no such endpoint: {request.method} {request.url.path[:100]} "
                              "(this server has POST /v1/chat/completions and GET /v1/models)")

    async def internal(request: Request, exc: Exception) -> Response:
        log.error("http %s %s: internal error", request.method, request.url.path[:100], exc_info=exc)
        return error_response("engine_error", INTERNAL)

    routes = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model:path}", model, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found, Exception: internal})
    return Gatekeeper(app, state)


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace") + b"\n\n"


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as `too_large` as soon as it passes `limit` (before it is all read)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise Refused("too_large", f"the request body is {length} bytes; the limit is {limit} bytes "
                      "(images count 4/3 of their size in base64)")
    chunks: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise Refused("too_large", f"the request body is over the limit of {limit} bytes")
        chunks.append(piece)
    return b"".join(chunks)


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (after the body has been read, receive() waits for that)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
