"""Helpers for the HTTP API tests: a free loopback port, an image as a data: URL, a raw request."""

from __future__ import annotations

import base64
import io
import socket

from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def png(w: int = 48, h: int = 32, color: tuple[int, int, int] = (9, 99, 199)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, "PNG")
    return buf.getvalue()


def encoded(fmt: str, w: int = 80, h: int = 60) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 60)).save(buf, fmt)
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def raw_http(port: int, request: bytes, read: bool = True) -> bytes:
    """One request on a fresh connection, exactly as given; the whole answer (the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(request)
        if not read:
            return b""
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out
