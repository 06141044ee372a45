"""The qwen-tray wire protocol, version 1: names, strict JSON, request checks, reply frames.

Pure Python on purpose: no ZeroMQ, no Pillow and nothing from `daemon/`, so the
server and any client agree on one definition and it is testable without sockets.
`docs/protocol.md` is the prose version of this module; keep them together.

What this module checks is the request's *shape* (fields, types, ranges, blob
indexes). Decoding the images and measuring text against the model's context
need the daemon (Pillow, the tokenizer) and happen in `daemon/ipc_server.py`, still
before the request is accepted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PROTOCOL = "qwen-tray/1"
VERSION = 1

OPS = ("generate", "cancel", "status", "ping", "shutdown")
ROLES = ("system", "user", "assistant")
PRIORITIES = ("interactive", "background")
RAW_MODES = {"RGB": 3, "BGRA": 4}  # bytes per pixel
REJECT_CODES = ("bad_request", "bad_image", "too_large", "busy", "unsupported_version", "unknown_op", "not_found")
ERROR_CODES = ("engine_error", "timeout", "shutting_down")
FINISH_REASONS = ("stop", "length", "cancelled")

MAX_ID_LEN = 128
MAX_DEPTH = 32  # objects/arrays nested deeper than this are refused (a v1 request needs 6)
MAX_NEW_TOKENS = 1_000_000
MAX_STOP_STRINGS = 16
MAX_STOP_LEN = 256

_TOP_KEYS = {
    "generate": {"v", "id", "op", "messages", "options"},
    "cancel": {"v", "id", "op", "target"},
    "status": {"v", "id", "op"},
    "ping": {"v", "id", "op"},
    "shutdown": {"v", "id", "op"},
}
_OPTION_KEYS = ("max_new_tokens", "min_new_tokens", "temperature", "top_p", "stop", "priority")


class Rejected(Exception):
    """A request that is not accepted: `code` is one of REJECT_CODES, `message` says what to change."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class RawSpec:
    """Raw pixels in a blob: exactly width x height x RAW_MODES[mode] bytes."""

    width: int
    height: int
    mode: str

    @property
    def nbytes(self) -> int:
        return self.width * self.height * RAW_MODES[self.mode]


@dataclass(frozen=True)
class ImageRef:
    """An image part: blob `blob` (0 = the frame after the JSON), encoded unless `raw` says otherwise."""

    blob: int
    raw: RawSpec | None
    where: str  # e.g. "messages[0].content[1]", for error messages


@dataclass(frozen=True)
class WireMessage:
    """One chat turn as the wire carries it: text parts joined with newlines, image parts in order."""

    role: str
    text: str
    images: tuple[ImageRef, ...]


@dataclass(frozen=True)
class Options:
    """Decoding options the client set; None = the daemon's configured default."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    priority: str = "background"
    min_new_tokens: int | None = None  # at least this many tokens before the model may stop (at most max)


@dataclass(frozen=True)
class Request:
    id: str
    op: str
    messages: tuple[WireMessage, ...] = ()
    options: Options = Options()
    target: str | None = None


# ---------------------------------------------------------------- strict JSON


class _NotStrict(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise _NotStrict(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotStrict(f"the number {text} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _NotStrict(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _check_tree(root: Any) -> None:
    """Depth limit and no lone surrogates (valid JSON escapes that are not valid text)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            items: list[Any] = list(node.keys()) + list(node.values())
        elif isinstance(node, list):
            items = node
        else:
            items = [node]
            depth -= 1
        if depth > MAX_DEPTH:
            raise _NotStrict(f"it is nested more than {MAX_DEPTH} levels deep")
        for item in items:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise _NotStrict("a string holds an unpaired surrogate escape") from None
            elif isinstance(item, (dict, list)):
                stack.append((item, depth + 1))


def loads(frame: bytes) -> dict[str, Any]:
    """Frame 0 -> a JSON object, strictly: UTF-8, no NaN/Infinity, no duplicate keys, bounded depth."""
    try:
        text = bytes(frame).decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("bad_request", "frame 0 must be a UTF-8 JSON object; it is not valid UTF-8") from None
    try:
        obj = json.loads(text, parse_constant=_no_constants, parse_float=_finite, object_pairs_hook=_unique_keys)
        _check_tree(obj)
    except RecursionError:
        raise Rejected("bad_request", f"frame 0 is nested too deeply (the limit is {MAX_DEPTH} levels)") from None
    except _NotStrict as exc:
        raise Rejected("bad_request", f"frame 0 is not strict JSON: {exc}") from None
    except ValueError as exc:  # json.JSONDecodeError, and ints past Python's digit limit
        raise Rejected("bad_request", f"frame 0 is not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise Rejected("bad_request", f"frame 0 must be a JSON object, not a JSON {type(obj).__name__}")
    return obj


def dumps(obj: dict[str, Any]) -> bytes:
    """A reply or request frame 0: compact UTF-8 JSON (NaN and Infinity refused; an unpaired
    surrogate, which no valid text holds, becomes "?" rather than failing a terminal event)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8", "replace")


# ---------------------------------------------------------------- requests


def valid_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LEN


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_request(frames: Sequence[bytes]) -> Request:
    """Check a request (frame 0 JSON, frames 1..n blobs) and return it; raise Rejected otherwise."""
    if not frames:
        raise Rejected("bad_request", "the message is empty: frame 0 must be a JSON object")
    obj = loads(frames[0])
    rid = obj.get("id") if valid_id(obj.get("id")) else None

    def bad(message: str, code: str = "bad_request") -> Rejected:
        return Rejected(code, message, rid)

    if "v" not in obj or not _is_int(obj["v"]):
        raise bad(f'"v" must be the integer {VERSION} (the protocol version)')
    if obj["v"] != VERSION:
        raise bad(f"protocol version {obj['v']} is not supported; this daemon speaks version {VERSION}",
                  "unsupported_version")
    if rid is None:
        raise bad(f'"id" must be a non-empty string of at most {MAX_ID_LEN} characters')
    op = obj.get("op")
    if not isinstance(op, str):
        raise bad(f'"op" must be a string, one of {", ".join(OPS)}')
    if op not in OPS:
        raise bad(f"unknown op {op[:40]!r}: use one of {', '.join(OPS)}", "unknown_op")
    if unknown := sorted(set(obj) - _TOP_KEYS[op]):
        raise bad(f"unknown field{'s' if len(unknown) > 1 else ''} for {op}: {', '.join(unknown)}")
    n_blobs = len(frames) - 1
    if op != "generate" and n_blobs:
        raise bad(f"{op} takes no binary frames; this request has {n_blobs}")

    if op == "cancel":
        if not valid_id(obj.get("target")):
            raise bad('"target" must be the id of one of your generate requests')
        return Request(rid, op, target=obj["target"])
    if op != "generate":
        return Request(rid, op)

    messages = _parse_messages(obj.get("messages"), n_blobs, bad)
    options = _parse_options(obj.get("options", {}), bad)
    return Request(rid, op, messages=messages, options=options)


def _parse_messages(value: Any, n_blobs: int, bad: Any) -> tuple[WireMessage, ...]:
    if not isinstance(value, list) or not value:
        raise bad('"messages" must be a non-empty list of {"role", "content"} objects')
    used: set[int] = set()
    out: list[WireMessage] = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f'{where} must be an object with "role" and "content"')
        if unknown := sorted(set(m) - {"role", "content"}):
            raise bad(f"{where} has unknown fields: {', '.join(unknown)}")
        role = m.get("role")
        if role not in ROLES:
            raise bad(f'{where}.role must be one of {", ".join(ROLES)}')
        content = m.get("content")
        texts: list[str] = []
        images: list[ImageRef] = []
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                images_or_text = _parse_part(part, f"{where}.content[{j}]", n_blobs, bad)
                if isinstance(images_or_text, ImageRef):
                    images.append(images_or_text)
                    used.add(images_or_text.blob)
                else:
                    texts.append(images_or_text)
        else:
            raise bad(f"{where}.content must be a string or a list of parts")
        text = "\n".join(texts)
        if not text.strip() and not images:
            raise bad(f"{where} is empty: give it some text or an image")
        out.append(WireMessage(role, text, tuple(images)))
    if out[-1].role != "user":
        raise bad(f"the last message must be the user's (role \"user\"), not {out[-1].role!r}")
    if unused := sorted(set(range(n_blobs)) - used):
        raise bad(f"blob {unused[0]} is not used by any image part: send only the blobs you refer to")
    return tuple(out)


def _parse_part(part: Any, where: str, n_blobs: int, bad: Any) -> ImageRef | str:
    if not isinstance(part, dict):
        raise bad(f'{where} must be an object with "type" "text" or "image"')
    kind = part.get("type")
    if kind == "text":
        if set(part) != {"type", "text"} or not isinstance(part.get("text"), str):
            raise bad(f'{where} must be {{"type": "text", "text": <string>}}')
        return part["text"]
    if kind != "image":
        raise bad(f'{where}.type must be "text" or "image"')
    if unknown := sorted(set(part) - {"type", "blob", "raw"}):
        raise bad(f"{where} has unknown fields: {', '.join(unknown)}")
    blob = part.get("blob")
    if not _is_int(blob) or blob < 0:
        raise bad(f"{where}.blob must be a non-negative integer (0 = the first frame after the JSON)")
    if blob >= n_blobs:
        have = f"there {'is' if n_blobs == 1 else 'are'} {n_blobs} blob{'' if n_blobs == 1 else 's'}"
        raise bad(f"{where} refers to blob {blob}, but {have} (frames 1..n after the JSON)")
    raw = part.get("raw")
    spec = None
    if raw is not None:
        if not isinstance(raw, dict) or set(raw) != {"width", "height", "mode"}:
            raise bad(f'{where}.raw must be {{"width": W, "height": H, "mode": "RGB" or "BGRA"}}')
        w, h, mode = raw["width"], raw["height"], raw["mode"]
        if not (_is_int(w) and _is_int(h) and w >= 1 and h >= 1):
            raise bad(f"{where}.raw width and height must be integers of at least 1")
        if mode not in RAW_MODES:
            raise bad(f'{where}.raw.mode must be "RGB" or "BGRA"')
        spec = RawSpec(w, h, mode)
    return ImageRef(blob, spec, where)


def option_problem(key: str, value: Any) -> str | None:
    """What is wrong with one decoding option's value, or None. The one rule for every API of the daemon
    (the HTTP API checks `max_tokens`, `temperature`, `top_p` and `stop` with it too)."""
    if key == "max_new_tokens":
        ok = _is_int(value) and 1 <= value <= MAX_NEW_TOKENS
        return None if ok else f"must be an integer from 1 to {MAX_NEW_TOKENS}"
    if key == "temperature":
        return None if _is_number(value) and value >= 0 else "must be a number, 0 or more (0 = greedy)"
    if key == "top_p":
        return None if _is_number(value) and 0 < value <= 1 else "must be a number in (0, 1]"
    if key == "stop":
        ok = (isinstance(value, list) and len(value) <= MAX_STOP_STRINGS
              and all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_LEN for s in value))
        return None if ok else (f"must be a list of at most {MAX_STOP_STRINGS} non-empty strings "
                                f"of at most {MAX_STOP_LEN} characters")
    raise KeyError(key)


def _parse_options(value: Any, bad: Any) -> Options:
    if not isinstance(value, dict):
        raise bad('"options" must be an object')
    if unknown := sorted(set(value) - set(_OPTION_KEYS)):
        raise bad(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                  f"use {', '.join(_OPTION_KEYS)}")
    for key in ("max_new_tokens", "temperature", "top_p", "stop"):
        if value.get(key) is not None and (problem := option_problem(key, value[key])) is not None:
            raise bad(f"options.{key} {problem}")
    mnt, temp, top_p, stop = (value.get(k) for k in ("max_new_tokens", "temperature", "top_p", "stop"))
    least = value.get("min_new_tokens")
    if least is not None and not (_is_int(least) and 0 <= least <= MAX_NEW_TOKENS):
        raise bad(f"options.min_new_tokens must be an integer from 0 to {MAX_NEW_TOKENS}")
    if least is not None and mnt is not None and least > mnt:
        raise bad(f"options.min_new_tokens ({least}) must not be more than options.max_new_tokens ({mnt})")
    priority = value.get("priority", "background")
    if priority not in PRIORITIES:
        raise bad('options.priority must be "interactive" or "background"')
    return Options(
        max_new_tokens=mnt,
        temperature=float(temp) if temp is not None else None,
        top_p=float(top_p) if top_p is not None else None,
        stop=tuple(stop) if stop is not None else None,
        priority=priority,
        min_new_tokens=least,
    )


# ---------------------------------------------------------------- replies


def reply(request_id: str | None, event: str, **fields: Any) -> bytes:
    """Frame 0 of a reply: {"v": 1, "id": ..., "event": ..., **fields}."""
    return dumps({"v": VERSION, "id": request_id, "event": event, **fields})


def rejected(request_id: str | None, code: str, message: str) -> bytes:
    return reply(request_id, "rejected", code=code, message=message)
