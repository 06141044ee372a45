"""A Python client for the running qwen-tray daemon.

    from qwen_tray_client.client import Client

    with Client() as client:                      # reads the connection file
        answer = client.ask("shot.png", "What does this error mean?", max_new_tokens=200)
        for chunk in answer:                      # text as it is generated
            print(chunk, end="", flush=True)
        print(answer.result["finish_reason"], answer.result["timings"])

Depends on pyzmq only (a PIL image is sent as raw RGB pixels, so Pillow is not
needed either); imports nothing from `daemon/`. One `Client` per thread: it owns
one DEALER socket, which may carry several requests at once (replies are sorted
by id). Every wait has a limit: no reply within `timeout` seconds raises
`DaemonTimeout`; while a generation streams, a silence longer than `timeout`
sends a ping, and only an unanswered ping raises.

Leaving a stream early (`break`, an exception, `answer.close()`) cancels the
request on the daemon and forgets its replies, so nothing piles up in the
client or runs on for nobody in the daemon. A rejection whose `id` is null (the
daemon could not read the request's id) fails every call still waiting for its
first reply, with the daemon's message.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from . import protocol
from .connection import (  # noqa: F401 - re-exported for callers
    ConnectionFileError,
    ConnectionInfo,
    DaemonNotRunning,
    read_connection_file,
)


class ClientError(RuntimeError):
    """Base of this module's errors."""


class DaemonTimeout(ClientError, TimeoutError):
    """The daemon did not answer in time."""


class RequestRejected(ClientError):
    """The daemon refused the request; `code` is the protocol's rejection code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class GenerationFailed(ClientError):
    """An accepted generation ended with `error`: engine_error, timeout or shutting_down."""

    def __init__(self, code: str, message: str, text: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.text = text  # what had been generated before the failure


@dataclass(frozen=True)
class RawImage:
    """Raw pixels, sent without encoding: width x height x 3 (RGB) or 4 (BGRA) bytes."""

    data: bytes
    width: int
    height: int
    mode: str = "RGB"


ImageInput = Any  # bytes (PNG/JPEG/WebP/BMP) | str | os.PathLike | RawImage | a PIL image


class Answer:
    """A streaming answer: iterate for text chunks; afterwards `result` holds the `done` event's fields."""

    def __init__(self, client: Client, request_id: str, queue_position: int) -> None:
        self._client = client
        self.id = request_id
        self.queue_position = queue_position
        self.result: dict[str, Any] | None = None
        self._chunks: list[str] = []
        self._ended = False  # error received, or abandoned

    @property
    def text(self) -> str:
        """The whole answer once finished, else what has arrived so far."""
        return self.result["text"] if self.result is not None else "".join(self._chunks)

    def __iter__(self) -> Iterator[str]:
        try:
            while self.result is None and not self._ended:
                msg = self._client._next(self.id, streaming=True)
                event = msg.get("event")
                if event == "token":
                    self._chunks.append(msg["text"])
                    yield msg["text"]
                elif event == "done":
                    self.result = {k: v for k, v in msg.items() if k not in ("v", "id", "event")}
                elif event == "error":
                    self._ended = True
                    raise GenerationFailed(msg.get("code", "?"), msg.get("message", ""), msg.get("text", ""))
        finally:
            self.close()

    def close(self) -> None:
        """Stop caring about this answer: if it has not ended, cancel it on the daemon (without waiting for
        the acknowledgement) and drop whatever else arrives for it. Leaving the `for` loop early does this."""
        if self.result is None and not self._ended:
            self._ended = True
            self._client._abandon(self.id)
        else:
            self._ended = True
            self._client._forget(self.id)

    def __enter__(self) -> Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self) -> dict[str, Any]:
        """Consume the rest of the stream; return the `done` fields."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def cancel(self) -> None:
        """Ask the daemon to stop this answer; keep iterating to get its `done` ("cancelled", or how it ended if
        it ended first: then the daemon no longer knows the id, and that is not an error)."""
        if self.result is None and not self._ended:
            try:
                self._client.cancel(self.id)
            except RequestRejected as exc:
                if exc.code != "not_found":
                    raise


class Client:
    """Talks to the daemon named by the connection file (default: $QWEN_TRAY_CONNECTION or the runtime dir)."""

    def __init__(self, connection_file: str | os.PathLike[str] | None = None, *, timeout: float = 30.0,
                 info: ConnectionInfo | None = None) -> None:
        self.info = info or read_connection_file(Path(connection_file) if connection_file else None)
        self.timeout = timeout
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.curve_serverkey = self.info.server_public_key.encode("ascii")
        self._sock.curve_publickey = self.info.client_public_key.encode("ascii")
        self._sock.curve_secretkey = self.info.client_secret_key.encode("ascii")
        self._sock.connect(self.info.endpoint)
        self._inbox: dict[str, collections.deque[dict[str, Any]]] = {}
        self._awaiting_first: set[str] = set()  # sent, no reply yet: where an id-null rejection belongs
        self._prefix = uuid.uuid4().hex[:8]
        self._counter = itertools.count(1)

    # ------------------------------------------------------------ API

    def ping(self) -> float:
        """Round trip to the daemon, in seconds."""
        started = time.perf_counter()
        self._call("ping")
        return time.perf_counter() - started

    def status(self) -> dict[str, Any]:
        """state, model, placement, queue_depth, uptime_s, demo, version (see docs/protocol.md)."""
        msg = self._call("status")
        return {k: v for k, v in msg.items() if k not in ("v", "id", "event")}

    def ask(self, image: ImageInput | Sequence[ImageInput] | None, question: str, **options: Any) -> Answer:
        """One user turn: the image(s), then the question. Options: max_new_tokens, temperature, top_p,
        stop, priority. Returns once the daemon has accepted the request (RequestRejected if not)."""
        images = [] if image is None else list(image) if isinstance(image, (list, tuple)) else [image]
        parts: list[dict[str, Any]] = []
        blobs: list[bytes] = []
        for img in images:
            part, blob = self._image_part(img, len(blobs))
            parts.append(part)
            blobs.append(blob)
        parts.append({"type": "text", "text": question})
        return self.generate([{"role": "user", "content": parts}], blobs, **options)

    def generate(self, messages: list[dict[str, Any]], blobs: Sequence[bytes] = (), **options: Any) -> Answer:
        """The general form: protocol messages (image parts refer to `blobs` by index) and options."""
        limit = 2 * self.info.max_bytes
        for i, blob in enumerate(blobs):
            if limit and len(blob) > limit:
                raise RequestRejected("too_large", f"blob {i} is {len(blob)} bytes; the daemon drops frames over "
                                      f"{limit} bytes without a reply (its image limit is {self.info.max_bytes})")
        fields: dict[str, Any] = {"messages": messages}
        if options:
            fields["options"] = options
        rid = self._send("generate", fields, blobs)
        msg = self._next(rid)
        if msg["event"] == "rejected":
            self._forget(rid)
            raise RequestRejected(msg.get("code", "?"), msg.get("message", ""))
        if msg["event"] != "accepted":
            raise ClientError(f"unexpected reply {msg['event']!r} to generate")
        return Answer(self, rid, int(msg.get("queue_position", 0)))

    def cancel(self, request_id: str) -> None:
        """Cancel one of this client's generate requests (RequestRejected "not_found" if it is not in flight)."""
        self._call("cancel", {"target": request_id})

    def shutdown(self) -> int:
        """Ask the daemon to stop; returns its pid (it exits shortly after)."""
        return int(self._call("shutdown").get("pid", 0))

    def close(self) -> None:
        self._sock.close(linger=0)
        self._ctx.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals

    def _image_part(self, img: ImageInput, index: int) -> tuple[dict[str, Any], bytes]:
        part: dict[str, Any] = {"type": "image", "blob": index}
        if isinstance(img, (bytes, bytearray, memoryview)):
            return part, bytes(img)
        if isinstance(img, (str, os.PathLike)):
            return part, Path(img).read_bytes()
        if isinstance(img, RawImage):
            part["raw"] = {"width": img.width, "height": img.height, "mode": img.mode}
            return part, img.data
        if hasattr(img, "tobytes") and hasattr(img, "size") and hasattr(img, "convert"):  # a PIL image
            rgb = img if getattr(img, "mode", "") == "RGB" else img.convert("RGB")
            width, height = rgb.size
            part["raw"] = {"width": width, "height": height, "mode": "RGB"}
            return part, rgb.tobytes()
        raise TypeError(f"an image must be bytes, a path, a RawImage or a PIL image, not {type(img).__name__}")

    def _send(self, op: str, fields: dict[str, Any] | None = None, blobs: Sequence[bytes] = (),
              expect_reply: bool = True) -> str:
        rid = f"{self._prefix}-{next(self._counter)}"
        frame = protocol.dumps({"v": protocol.VERSION, "id": rid, "op": op, **(fields or {})})
        if expect_reply:
            self._inbox[rid] = collections.deque()
            self._awaiting_first.add(rid)
        self._sock.send_multipart([frame, *blobs], copy=len(blobs) == 0)
        return rid

    def _abandon(self, rid: str) -> None:
        """Cancel `rid` on the daemon without waiting (its ack and any later replies are dropped)."""
        self._forget(rid)
        if not self._sock.closed:
            # ZMQError: the socket is going away; the daemon cancels a vanished client's requests itself
            with contextlib.suppress(zmq.ZMQError):
                self._send("cancel", {"target": rid}, expect_reply=False)

    def _call(self, op: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
        rid = self._send(op, fields)
        msg = self._next(rid)
        self._forget(rid)
        if msg.get("event") == "rejected":
            raise RequestRejected(msg.get("code", "?"), msg.get("message", ""))
        return msg

    def _forget(self, rid: str) -> None:
        self._inbox.pop(rid, None)
        self._awaiting_first.discard(rid)

    def _next(self, rid: str, streaming: bool = False) -> dict[str, Any]:
        """The next reply for `rid`, keeping other ids' replies for later."""
        box = self._inbox.setdefault(rid, collections.deque())
        silent_since = time.monotonic()
        while not box:
            left = self.timeout - (time.monotonic() - silent_since)
            if left <= 0:
                if not streaming:
                    raise DaemonTimeout(
                        f"no reply from qwen-tray at {self.info.endpoint} within {self.timeout:g} s: "
                        "is it running? (`qwen-tray status`)"
                    )
                self._call("ping")  # a long queue or a slow model is fine; a dead daemon is not
                silent_since = time.monotonic()
                continue
            if not self._sock.poll(int(left * 1000) + 1):
                continue
            msg = protocol.loads(self._sock.recv())
            other = msg.get("id")
            if isinstance(other, str) and other in self._inbox:
                self._inbox[other].append(msg)
                self._awaiting_first.discard(other)
            elif other is None and msg.get("event") == "rejected":
                # The daemon could not read the id of one of our requests still waiting for a first reply;
                # which one cannot be known, so each of them gets the rejection rather than a timeout.
                for waiting in self._awaiting_first:
                    self._inbox[waiting].append(msg)
                self._awaiting_first.clear()
            # replies to requests this client has forgotten (an abandoned stream's) are dropped
        return box.popleft()
