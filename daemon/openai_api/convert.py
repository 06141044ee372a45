"""An OpenAI chat-completions request body -> the engine's messages and options.

Shape checks are ours (OpenAI's names, OpenAI's parts); every limit and value range comes
from `qwen_tray.admission` and `qwen_tray_client.protocol`, so both APIs refuse the same things. Images are
`data:` URLs only, unless `[http] fetch_image_urls` is on (then http(s) URLs are fetched by
app.py before this runs); local paths (`file:`, bare paths) are always refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qwen_tray_client.protocol import ROLES, Rejected, loads

from ..admission import Admission, Refused, RequestedOptions
from ..engine.base import GenerationOptions, Message

# Fields OpenAI defines that we accept (some only at their neutral value), the rest are refused by name.
_KNOWN = {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
          "top_p", "stop", "n", "user", "seed", "presence_penalty", "frequency_penalty", "logprobs",
          "response_format", "metadata", "store", "parallel_tool_calls", "tool_choice"}
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)
_IMAGE_MIMES = {"image/png", "image/jpeg", "image/jpg", "image/webp", "image/bmp", "image/x-ms-bmp"}


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[Message]
    options: GenerationOptions
    stream: bool
    include_usage: bool


def bad(message: str) -> Refused:
    return Refused("bad_request", message)


def parse_body(body: bytes) -> dict[str, Any]:
    """Strict JSON (the ZeroMQ API's rules: UTF-8, no NaN, no duplicate keys, bounded depth), an object."""
    try:
        return loads(body)
    except Rejected as exc:
        raise bad(exc.message.replace("frame 0", "the request body")) from None


def image_url_of(part: dict[str, Any], where: str) -> str:
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise bad(f'{where}.image_url must be {{"url": "data:image/png;base64,..."}}')
    if isinstance(value, dict) and (unknown := sorted(set(value) - {"url", "detail"})):
        raise bad(f"{where}.image_url has unknown fields: {', '.join(unknown)}")
    return url


def decode_data_url(url: str, where: str) -> bytes:
    """`data:image/png;base64,...` -> the image's bytes; anything else is refused with the reason."""
    m = _DATA_URL.match(url)
    if m is None:
        if url.lower().startswith(("http://", "https://")):
            raise bad(f"{where} is a web address: this server does not fetch images on your behalf "
                      "(send a data: URL, or set [http] fetch_image_urls = true)")
        raise bad(f"{where} must be a data: URL (data:image/png;base64,...); local paths and other "
                  "URL schemes are refused")
    mime = (m.group("mime") or "").lower()
    if mime and mime not in _IMAGE_MIMES:
        raise Refused("bad_image", f"{where} is {mime}: send a PNG, JPEG, WebP or BMP image")
    if not m.group("b64"):
        raise bad(f"{where} must be base64-encoded (data:image/png;base64,...)")
    try:
        return base64.b64decode(url[m.end():], validate=True)
    except (binascii.Error, ValueError):
        raise Refused("bad_image", f"{where} is not valid base64") from None


def _content(content: Any, where: str, admission: Admission,
             fetched: dict[str, bytes]) -> tuple[str, list[Any]]:
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise bad(f"{where} must be a string or a list of parts")
    texts: list[str] = []
    images: list[Any] = []
    for j, part in enumerate(content):
        pw = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise bad(f'{pw} must be an object with "type" "text" or "image_url"')
        kind = part.get("type")
        if kind == "text":
            if set(part) != {"type", "text"} or not isinstance(part.get("text"), str):
                raise bad(f'{pw} must be {{"type": "text", "text": <string>}}')
            texts.append(part["text"])
        elif kind == "image_url":
            if unknown := sorted(set(part) - {"type", "image_url"}):
                raise bad(f"{pw} has unknown fields: {', '.join(unknown)}")
            url = image_url_of(part, pw)
            data = fetched[url] if url in fetched else decode_data_url(url, f"the image in {pw}")
            images.append(admission.image(data, f"the image in {pw}"))
        else:
            raise bad(f'{pw}.type must be "text" or "image_url"')
    return "\n".join(texts), images


def _options(obj: dict[str, Any], admission: Admission) -> RequestedOptions:
    for key, neutral in (("n", 1), ("presence_penalty", 0), ("frequency_penalty", 0), ("logprobs", False),
                         ("parallel_tool_calls", None), ("tool_choice", "none")):
        if key in obj and obj[key] is not None and obj[key] != neutral:
            raise bad(f"{key} is not supported here (only {neutral!r})")
    fmt = obj.get("response_format")
    if fmt is not None and fmt != {"type": "text"}:
        raise bad('response_format is not supported here (only {"type": "text"})')
    if "max_tokens" in obj and "max_completion_tokens" in obj and obj["max_tokens"] != obj["max_completion_tokens"]:
        raise bad("give max_completion_tokens or max_tokens, not two different values")
    name = "max_completion_tokens" if obj.get("max_completion_tokens") is not None else "max_tokens"
    mnt = obj.get(name)
    admission.check_option("max_new_tokens", mnt, name)
    admission.check_option("temperature", obj.get("temperature"), "temperature")
    admission.check_option("top_p", obj.get("top_p"), "top_p")
    stop = obj.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    admission.check_option("stop", stop, "stop")
    temp, top_p = obj.get("temperature"), obj.get("top_p")
    return RequestedOptions(
        max_new_tokens=mnt,
        temperature=float(temp) if temp is not None else None,
        top_p=float(top_p) if top_p is not None else None,
        stop=tuple(stop) if stop is not None else None,
    )


def chat_request(obj: dict[str, Any], admission: Admission, model_name: str,
                 fetched: dict[str, bytes] | None = None) -> ChatRequest:
    """Check a chat-completions body and build what the scheduler runs; raise Refused otherwise."""
    if unknown := sorted(set(obj) - _KNOWN):
        raise bad(f"unknown or unsupported field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    model = obj.get("model", model_name)
    if not isinstance(model, str):
        raise bad('"model" must be a string (GET /v1/models lists the one served)')
    stream = obj.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise bad('"stream" must be true or false')
    so = obj.get("stream_options")
    include_usage = False
    if so is not None:
        if not isinstance(so, dict) or set(so) - {"include_usage", "include_obfuscation"}:
            raise bad('"stream_options" must be {"include_usage": true | false}')
        if not stream:
            raise bad('"stream_options" is only allowed with "stream": true')
        include_usage = bool(so.get("include_usage", False))
    requested = _options(obj, admission)
    value = obj.get("messages")
    if not isinstance(value, list) or not value:
        raise bad('"messages" must be a non-empty list of {"role", "content"} objects')
    fetched = fetched or {}
    messages: list[Message] = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f'{where} must be an object with "role" and "content"')
        if unknown := sorted(set(m) - {"role", "content", "name"}):
            raise bad(f"{where} has unknown fields: {', '.join(unknown)}")
        role = "system" if m.get("role") == "developer" else m.get("role")
        if role not in ROLES:
            raise bad(f'{where}.role must be one of {", ".join(ROLES)} or developer')
        text, images = _content(m.get("content"), f"{where}.content", admission, fetched)
        if not text.strip() and not images:
            raise bad(f"{where} is empty: give it some text or an image")
        messages.append(Message(role, text, images))
    if messages[-1].role != "user":
        raise bad(f"the last message must be the user's (role \"user\"), not {messages[-1].role!r}")
    admission.check_context([m.text for m in messages])
    return ChatRequest(model, messages, admission.options(requested), bool(stream), include_usage)


def image_urls(obj: dict[str, Any], wanted: Callable[[str], bool]) -> list[str]:
    """The image URLs in a body that `wanted` picks (the web ones, to fetch), without checking anything else."""
    out: list[str] = []
    for m in obj.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") == "image_url":
                v = part.get("image_url")
                url = v.get("url") if isinstance(v, dict) else v
                if isinstance(url, str) and wanted(url) and url not in out:
                    out.append(url)
    return out
