"""The ZeroMQ side of the daemon: a CURVE-secured ROUTER on 127.0.0.1, one thread.

Threads and sockets (a ZeroMQ socket belongs to one thread):

    clients (DEALER) ──tcp+CURVE──> ROUTER ┐
                                    ZAP REP ├─ server thread: poll(), no timeout, no polling loop
        events: queue + wake-up socket ─────┘
               ^
               └── any thread: the scheduler's worker, openvino.genai's streamer threads, stop()

The server thread alone touches the ROUTER and the ZAP socket. Job sinks run on
whatever thread the engine calls them from (openvino.genai calls its streamer
from threads of its own, a new one for almost every chunk); they serialise their
event to JSON there and hand it over through `EventQueue`: a thread-safe queue
plus one byte on a socket pair whose read end only the server thread polls. No
thread creates a socket to do so, so nothing accumulates per thread.
Sends to clients never block: with
ROUTER_MANDATORY a send to a client that has gone raises EHOSTUNREACH, and a
client that stops reading fills its SNDHWM and the send raises EAGAIN; either
way that client's requests are cancelled and the engine stops at the next token.

Everything about a request is checked here before it is accepted (shape via
`qwen_tray_client.protocol`, every image decoded, the newest question measured against the
prompt budget of `qwen_tray.budget`, the queue bound); a bad request gets `rejected` and never reaches the scheduler.
The slow checks (decoding images, size checks, counting tokens) run on a small
bounded executor, so one client's 8000x8000 PNG never delays another client's
tokens, a ping or ZAP; the result comes back through the same EventQueue. Each
client's generate requests are still accepted in the order they were sent.
The ZAP handler on the same thread admits only the client key from the
connection file, so a peer without it gets no reply at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import zmq
from zmq.utils import z85

from qwen_tray.admission import Admission, Refused, RequestedOptions, submit
from qwen_tray.budget import PromptBudget
from qwen_tray.engine.base import GenerationOptions, GenerationResult, Message
from qwen_tray.jobs import Job
from qwen_tray.logs import RepeatedFailure
from qwen_tray_client import protocol
from qwen_tray_client.connection import ConnectionInfo

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"qwen-tray"
PREPARE_THREADS = 2  # decoding images and counting tokens, off the server thread
MAX_PREPARING = 1024  # generate requests waiting for their checks; more: busy
PREPARING_BYTES_PER_IMAGE_LIMIT = 4  # blob bytes held while waiting: at most 4 x max_bytes (>= 64 MB); more: busy


class SchedulerLike(Protocol):
    def submit(self, job: Job) -> int: ...
    def cancel(self, job: Job) -> None: ...
    def status(self) -> dict[str, Any]: ...


class EventQueue:
    """Many producer threads, one consumer (the server thread): a queue plus one wake-up.

    `put` appends to a `queue.SimpleQueue`, then writes one byte to the write end
    of a socket pair; the server thread polls the read end (a plain socket, which
    zmq.Poller accepts on every platform) next to its ZeroMQ sockets. `drain`
    first empties the wake-up socket, then the queue. Why this never loses an
    event: a producer writes its byte after its item is queued, so an item the
    consumer's queue pass misses was queued after that pass started, and its byte
    arrives after the consumer emptied the socket: the next poll wakes at once.
    A full socket buffer (EAGAIN) means wake-ups are already pending; dropping the
    byte loses nothing. A lock orders writes against `close`, so no write ever
    lands on a reused descriptor number.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._lock = threading.Lock()
        self._closed = False

    def put(self, item: tuple[Any, ...]) -> None:
        """Hand `item` to the consumer (any thread; never blocks; a no-op once closed)."""
        if self._closed:
            return
        self._queue.put(item)
        with self._lock:
            if self._closed:
                return
            # BlockingIOError: the buffer is full of wake-ups, so the consumer is awake anyway
            with contextlib.suppress(BlockingIOError, InterruptedError):
                self._writer.send(b"\0")

    def fileno(self) -> int:
        """The read end, for the consumer's poller."""
        return self._reader.fileno()

    def drain(self) -> list[tuple[Any, ...]]:
        """Everything queued so far (consumer only): wake-ups first, then the queue."""
        try:
            while self._reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._reader.close()
            self._writer.close()


class _Sink:
    """A job's events -> JSON frames -> the server's EventQueue -> the server thread -> the client."""

    def __init__(self, server: Server, identity: bytes, request_id: str, label: str) -> None:
        self._server = server
        self._identity = identity
        self._rid = request_id
        self._label = label
        self._chunks = 0
        self._failures = RepeatedFailure(log, f"{label}: handing over an event")

    def _send(self, terminal: bool, event: str, **fields: Any) -> None:
        """Never raises: a failure here would repeat for every token (see RepeatedFailure)."""
        try:
            frame = protocol.reply(self._rid, event, **fields)
            if terminal:  # the count is logged before the client can see the end of its answer
                self._failures.summary()
            self._server._events.put(("e" if terminal else "t", self._identity, self._rid, frame))
        except Exception as exc:  # noqa: BLE001
            self._failures.failed(exc)
            if terminal:
                self._failures.summary()

    def on_start(self) -> None:
        log.debug("%s: started", self._label)

    def on_chunk(self, text: str) -> None:
        self._chunks += 1
        self._send(False, "token", text=text)

    def on_done(self, result: GenerationResult, queue_ms: float, demo: bool) -> None:
        f = result.figures
        log.debug("%s: answer %r", self._label, result.text)
        self._send(
            True, "done",
            text=result.text,
            finish_reason=result.finish_reason,
            usage={"prompt_tokens": f.prompt_tokens, "completion_tokens": f.completion_tokens},
            timings={"queue_ms": queue_ms, "ttft_ms": f.ttft_ms, "total_ms": f.total_ms,
                     "tokens_per_s": f.tokens_per_s},
            demo=demo,
            trimmed=result.trimmed.as_dict() if result.trimmed is not None else None,
        )

    def on_error(self, code: str, message: str, partial_text: str) -> None:
        log.info("%s: error %s after %d chunks: %s", self._label, code, self._chunks, message)
        self._send(True, "error", code=code, message=message, text=partial_text)


@dataclass
class _Prep:
    """A generate request being checked on the executor (server-thread state, except `outcome`)."""

    identity: bytes
    req: protocol.Request
    started: float
    nbytes: int = 0  # blob bytes held until checked
    cancelled: bool = False  # a cancel arrived before it was accepted: accept, then cancel at once
    outcome: Any = None  # (messages, options) or a protocol.Rejected, set by the executor thread
    ready: threading.Event = field(default_factory=threading.Event)


class Server:
    """Serve `scheduler` on tcp://127.0.0.1:<port>; `start()` returns the endpoint."""

    def __init__(
        self,
        scheduler: SchedulerLike,
        *,
        port: int = 0,
        max_bytes: int = 32 * 1024 * 1024,
        max_pixels: int = 8192 * 8192,
        defaults: GenerationOptions = GenerationOptions(),
        version: str = "",
        budget: PromptBudget | None = None,
        on_shutdown: Callable[[], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
        sndhwm: int = 1000,
        sndbuf: int = -1,
    ) -> None:
        if not zmq.has("curve"):
            raise RuntimeError("this pyzmq/libzmq has no CURVE support, which the server requires")
        self._scheduler = scheduler
        self._port = port
        self._max_bytes = max_bytes
        self._version = version
        # the checks and limits shared with the HTTP API (qwen_tray.admission): one place decides them
        self._admission = Admission(max_bytes=max_bytes, max_pixels=max_pixels, defaults=defaults,
                                    budget=budget)
        self._on_shutdown = on_shutdown
        self._on_failure = on_failure  # called on the server thread if it dies (a bug): the daemon must not look alive
        self.failure = ""
        self._sndhwm = sndhwm
        self._sndbuf = sndbuf

        server_public, self._server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        self.server_public_key = server_public.decode("ascii")
        self.client_public_key = client_public.decode("ascii")
        self.client_secret_key = client_secret.decode("ascii")
        self._allowed_client_key = z85.decode(client_public)

        self._ctx = zmq.Context()
        self._events = EventQueue()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._router: zmq.Socket | None = None  # the server thread's alone
        self.endpoint = ""
        # server-thread state: client identity -> {request id -> job}, and requests still being checked
        self._inflight: dict[bytes, dict[str, Job]] = {}
        self._preparing: dict[bytes, deque[_Prep]] = {}
        self._send_failures: dict[tuple[bytes, str], RepeatedFailure] = {}
        self._n_preparing = 0
        self._preparing_bytes = 0
        self._prep_pool = ThreadPoolExecutor(PREPARE_THREADS, thread_name_prefix="qwen-tray-ipc-check")

    # ------------------------------------------------------------ lifecycle (any thread)

    def start(self, timeout: float = 10.0) -> str:
        """Bind on the server thread; return the endpoint, or raise what binding raised."""
        started: Future[str] = Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="qwen-tray-ipc", daemon=True)
        self._thread.start()
        self.endpoint = started.result(timeout)
        return self.endpoint

    def connection_info(self) -> ConnectionInfo:
        return ConnectionInfo(
            endpoint=self.endpoint,
            server_public_key=self.server_public_key,
            client_public_key=self.client_public_key,
            client_secret_key=self.client_secret_key,
            pid=os.getpid(),
            max_bytes=self._max_bytes,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver the events already handed over, close the sockets, end the thread.

        Call it after the scheduler has stopped, so that every job's terminal event
        has been handed over and reaches its client (the ROUTER lingers up to 2 s).
        Only the server thread's own sockets are closed, by the server thread.
        """
        if self._thread is None or self._closed:
            return
        self._events.put(("s",))
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the IPC thread did not stop within %.0f s", timeout)
            return
        self._closed = True
        self._prep_pool.shutdown(wait=False, cancel_futures=True)
        self._events.close()
        self._ctx.term()  # returns once the ROUTER has flushed (or its linger ran out)

    # ------------------------------------------------------------ server thread

    def _bind(self) -> tuple[zmq.Socket, zmq.Socket]:
        zap = self._ctx.socket(zmq.REP)
        zap.setsockopt(zmq.LINGER, 0)
        zap.bind(ZAP_ENDPOINT)  # before the ROUTER exists, so no handshake skips authentication
        router = self._ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.SNDHWM, self._sndhwm)
        if self._sndbuf > 0:
            router.setsockopt(zmq.SNDBUF, self._sndbuf)
        router.setsockopt(zmq.MAXMSGSIZE, 2 * self._max_bytes)
        router.setsockopt(zmq.LINGER, 2000)
        router.curve_server = True
        router.curve_secretkey = self._server_secret
        router.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        if self._port:
            router.bind(f"tcp://127.0.0.1:{self._port}")
        else:
            router.bind("tcp://127.0.0.1:0")
        return zap, router

    def _run(self, started: Future[str]) -> None:
        try:
            zap, router = self._bind()
        except Exception as exc:  # noqa: BLE001 - reported to start()'s caller
            self._ctx.destroy(linger=0)
            self._closed = True
            self._events.close()
            self._prep_pool.shutdown(wait=False)
            started.set_exception(exc)
            return
        self._router = router
        endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode("ascii")
        log.info("serving %s on %s", protocol.PROTOCOL, endpoint)
        started.set_result(endpoint)
        poller = zmq.Poller()
        wake = self._events.fileno()
        poller.register(wake, zmq.POLLIN)
        for sock in (zap, router):
            poller.register(sock, zmq.POLLIN)
        try:
            running = True
            while running:
                ready = dict(poller.poll())
                if wake in ready:
                    running = self._drain_events()
                if zap in ready:
                    self._answer_zap(zap)
                if router in ready and running:
                    self._drain_requests(router)
            self._drain_events()  # what producers handed over before stop() (they have all finished)
        except BaseException as exc:  # noqa: BLE001 - reported to the owner below
            self.failure = f"{type(exc).__name__}: {exc}"
            log.exception("the IPC server thread failed")
        finally:
            for sock in (zap, router):
                sock.close(linger=0 if self.failure else None)
            log.info("IPC server closed")
        if self.failure and self._on_failure is not None:
            try:
                self._on_failure(self.failure)
            except Exception:  # noqa: BLE001
                log.exception("reporting the IPC server's failure failed")

    def _drain_events(self) -> bool:
        """Forward every pending event; False once the stop sentinel has come."""
        running = True
        for item in self._events.drain():
            kind = item[0]
            if kind == "s":
                running = False
                continue
            if kind == "p":
                if running:
                    self._accept_prepared(item[1])
                continue
            _, identity, rid, payload = item
            error = self._try_send(identity, payload)
            key = (identity, rid)
            if error:
                counter = self._send_failures.get(key)
                if counter is None:
                    counter = self._send_failures[key] = RepeatedFailure(
                        log, f"client {identity.hex()} id {rid!r}: sending")
                counter.failed(error)
            if kind == "e":
                counter = self._send_failures.pop(key, None)
                if counter is not None:
                    counter.summary()
                jobs = self._inflight.get(identity)
                if jobs is not None:
                    jobs.pop(rid, None)
                    if not jobs:
                        del self._inflight[identity]
        return running

    def _drain_requests(self, router: zmq.Socket, batch: int = 64) -> None:
        for _ in range(batch):  # bounded, so events keep flowing while requests pour in
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._handle(frames[0], frames[1:])

    def _answer_zap(self, zap: zmq.Socket) -> None:
        try:
            frames = zap.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        version, request_id, _domain, address, _identity, mechanism = frames[:6]
        credentials = frames[6:]
        ok = mechanism == b"CURVE" and credentials[:1] == [self._allowed_client_key]
        if not ok:
            log.warning("refused a %s connection from %s: unknown client key", mechanism.decode(errors="replace"),
                        address.decode(errors="replace"))
        status, text = (b"200", b"OK") if ok else (b"400", b"unknown client key")
        zap.send_multipart([version, request_id, status, text, b"", b""])

    def _send(self, identity: bytes, payload: bytes) -> bool:
        """Send a reply without blocking; a client that has gone or stopped reading loses its requests."""
        error = self._try_send(identity, payload)
        if error:
            log.warning("sending to client %s failed: %s", identity.hex(), error)
        return not error

    def _try_send(self, identity: bytes, payload: bytes) -> str:
        """Send without blocking: "" when sent or when the client is gone (its requests are then cancelled),
        else what went wrong (the caller decides how to log it: for a stream, once per request)."""
        try:
            self._router.send_multipart([identity, payload], zmq.NOBLOCK)
        except zmq.Again:
            self._client_gone(identity, "stopped reading (its send queue is full)")
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                self._client_gone(identity, "has disconnected")
            else:
                return str(exc) or type(exc).__name__
        return ""

    def _client_gone(self, identity: bytes, why: str) -> None:
        jobs = [j for j in self._inflight.get(identity, {}).values() if not j.cancel.is_set()]
        if jobs:
            log.info("client %s %s: cancelling its %d request(s)", identity.hex(), why, len(jobs))
        for job in jobs:
            self._scheduler.cancel(job)

    # ------------------------------------------------------------ requests (server thread)

    def _handle(self, identity: bytes, frames: list[bytes]) -> None:
        client = identity.hex()
        started = time.perf_counter()
        rid = None
        try:
            req = protocol.parse_request(frames)
            rid = req.id
            if req.id in self._inflight.get(identity, {}) or any(
                    p.req.id == req.id for p in self._preparing.get(identity, ())):
                raise protocol.Rejected("bad_request", f"id {req.id!r} is already in flight: ids must be unique "
                                        "among your requests in flight", req.id)
            if req.op == "generate":
                self._generate(identity, req, frames[1:], started)
            elif req.op == "cancel":
                self._cancel(identity, req)
            elif req.op == "status":
                self._send(identity, protocol.reply(req.id, "status", version=self._version,
                                                    **self._scheduler.status()))
            elif req.op == "ping":
                self._send(identity, protocol.reply(req.id, "pong"))
            elif req.op == "shutdown":
                log.info("client %s asked the daemon to stop", client)
                self._send(identity, protocol.reply(req.id, "stopping", pid=os.getpid()))
                if self._on_shutdown is not None:
                    self._on_shutdown()
        except protocol.Rejected as r:
            log.info("client %s id %r: rejected %s: %s (%d frames, %d bytes)", client, r.request_id, r.code,
                     r.message, len(frames), sum(len(f) for f in frames))
            self._send(identity, protocol.rejected(r.request_id, r.code, r.message))
        except Exception:  # noqa: BLE001 - a bug must cost one request, not the server thread
            log.exception("client %s id %r: internal error", client, rid)
            self._send(identity, protocol.rejected(rid, "bad_request", "the daemon could not handle this request "
                                                   "(an internal error, see the daemon's log)"))

    def _cancel(self, identity: bytes, req: protocol.Request) -> None:
        job = self._inflight.get(identity, {}).get(req.target or "")
        prep = next((p for p in self._preparing.get(identity, ()) if p.req.id == req.target), None)
        if prep is not None:  # still being checked: it is accepted, then cancelled at once (done "cancelled")
            log.info("client %s: cancel %r (still being checked)", identity.hex(), req.target)
            prep.cancelled = True
            self._send(identity, protocol.reply(req.id, "ack", target=req.target))
            return
        if job is None:
            raise protocol.Rejected("not_found", f"no generate request {req.target!r} of yours is in flight "
                                    "(it has ended, or it never was accepted)", req.id)
        log.info("client %s: cancel %r", identity.hex(), req.target)
        self._scheduler.cancel(job)
        self._send(identity, protocol.reply(req.id, "ack", target=req.target))

    def _generate(self, identity: bytes, req: protocol.Request, blobs: list[bytes], started: float) -> None:
        """Queue the request's checks on the executor; `_accept_prepared` answers once they are done."""
        nbytes = sum(len(b) for b in blobs)
        byte_limit = max(PREPARING_BYTES_PER_IMAGE_LIMIT * self._max_bytes, 64 << 20)
        if self._n_preparing >= MAX_PREPARING or (self._preparing_bytes and
                                                  self._preparing_bytes + nbytes > byte_limit):
            raise protocol.Rejected("busy", f"{self._n_preparing} requests ({self._preparing_bytes} bytes of images) "
                                    "are already waiting for their checks: try again in a moment", req.id)
        prep = _Prep(identity, req, started, nbytes=nbytes)
        self._preparing.setdefault(identity, deque()).append(prep)
        self._n_preparing += 1
        self._preparing_bytes += nbytes
        self._prep_pool.submit(self._prepare, prep, blobs)

    def _prepare(self, prep: _Prep, blobs: list[bytes]) -> None:
        """Executor thread: decode the images, measure the text; hand the outcome to the server thread."""
        req = prep.req
        try:
            options = self._options(req)
            self._check_context(req, options.max_new_tokens)
            messages = [self._message(m, blobs, req.id) for m in req.messages]
            prep.outcome = (messages, options)
        except protocol.Rejected as r:
            prep.outcome = r
        except Exception:  # noqa: BLE001 - a bug must cost one request, not the executor
            log.exception("client %s id %r: internal error while checking", prep.identity.hex(), req.id)
            prep.outcome = protocol.Rejected("bad_request", "the daemon could not check this request (an internal "
                                             "error, see the daemon's log)", req.id)
        prep.ready.set()
        self._events.put(("p", prep.identity))

    def _options(self, req: protocol.Request) -> GenerationOptions:
        o = req.options
        options = dataclasses.replace(
            self._admission.options(RequestedOptions(o.max_new_tokens, o.temperature, o.top_p, o.stop)),
            min_new_tokens=o.min_new_tokens or 0,
        )
        if options.min_new_tokens > options.max_new_tokens:
            raise protocol.Rejected("bad_request", f"options.min_new_tokens ({options.min_new_tokens}) is more than "
                                    f"max_new_tokens ({options.max_new_tokens}, the daemon's default): set both",
                                    req.id)
        return options

    def _accept_prepared(self, identity: bytes) -> None:
        """Answer this client's checked requests, in the order it sent them (server thread)."""
        queue_ = self._preparing.get(identity)
        while queue_ and queue_[0].ready.is_set():
            prep = queue_.popleft()
            self._n_preparing -= 1
            self._preparing_bytes -= prep.nbytes
            try:
                self._accept(prep)
            except protocol.Rejected as r:
                log.info("client %s id %r: rejected %s: %s", identity.hex(), r.request_id, r.code, r.message)
                self._send(identity, protocol.rejected(r.request_id, r.code, r.message))
            except Exception:  # noqa: BLE001 - a bug must cost one request, not the server thread
                log.exception("client %s id %r: internal error", identity.hex(), prep.req.id)
                self._send(identity, protocol.rejected(prep.req.id, "bad_request", "the daemon could not handle "
                                                       "this request (an internal error, see the daemon's log)"))
        if queue_ is not None and not queue_:
            del self._preparing[identity]

    def _accept(self, prep: _Prep) -> None:
        identity, req = prep.identity, prep.req
        if isinstance(prep.outcome, protocol.Rejected):
            raise prep.outcome
        messages, options = prep.outcome
        label = f"client {identity.hex()} id {req.id!r}"
        job = Job(messages, options, _Sink(self, identity, req.id, label), req.options.priority, label)
        if prep.cancelled:  # cancelled while being checked: flagged before the worker can start it (a short
            job.cancel.set()  # answer could otherwise run to its end before the cancel below lands)
        try:
            position = submit(self._scheduler, job)
        except Refused as exc:
            raise protocol.Rejected(exc.code, exc.message, req.id) from None
        self._inflight.setdefault(identity, {})[req.id] = job
        n_images = sum(len(m.images) for m in messages)
        log.info("%s: accepted at %d (%s, %d messages, %d images, %d text chars, max_new_tokens %d, "
                 "checked in %.1f ms)", label, position, req.options.priority, len(messages), n_images,
                 sum(len(m.text) for m in messages), options.max_new_tokens,
                 (time.perf_counter() - prep.started) * 1000.0)
        log.debug("%s: question %r", label, [m.text for m in messages])
        self._send(identity, protocol.reply(req.id, "accepted", queue_position=position))
        if prep.cancelled:
            self._scheduler.cancel(job)

    def _message(self, m: protocol.WireMessage, blobs: list[bytes], rid: str) -> Message:
        images = []
        for ref in m.images:
            raw = (ref.raw.width, ref.raw.height, ref.raw.mode) if ref.raw is not None else None
            try:
                images.append(self._admission.image(blobs[ref.blob], f"the image in {ref.where} (blob {ref.blob})",
                                                    raw))
            except Refused as exc:
                raise protocol.Rejected(exc.code, exc.message, rid) from None
        return Message(m.role, m.text, images)  # type: ignore[arg-type]

    def _check_context(self, req: protocol.Request, max_new_tokens: int) -> None:
        """Refuse a question that cannot fit the prompt budget even with older turns left out (`too_large`)."""
        try:
            self._admission.check_context([(m.role, m.text, len(m.images)) for m in req.messages], max_new_tokens)
        except Refused as exc:
            raise protocol.Rejected(exc.code, exc.message, req.id) from None
