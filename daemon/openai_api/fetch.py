"""Fetch http(s) image URLs for a request, only when `[http] fetch_image_urls = true` (off by default).

Off by default because fetching makes the daemon reach out on a client's behalf; when on, each
image is bounded by the byte limit (the download stops there) and a 10 s time-out.
"""

from __future__ import annotations

import httpx

from ..admission import Refused

TIMEOUT_S = 10.0


async def fetch_all(urls: list[str], max_bytes: int) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if not urls:
        return out
    async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=True, max_redirects=3) as client:
        for url in urls:
            out[url] = await _fetch(client, url, max_bytes)
    return out


async def _fetch(client: httpx.AsyncClient, url: str, max_bytes: int) -> bytes:
    shown = url[:200]
    try:
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise Refused("bad_image", f"fetching the image {shown} answered HTTP {response.status_code}")
            data = bytearray()
            async for piece in response.aiter_bytes():
                data += piece
                if len(data) > max_bytes:
                    raise Refused("too_large", f"the image {shown} is over the limit of {max_bytes} bytes")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise Refused("bad_image", f"the image {shown} could not be fetched ({type(exc).__name__})") from None
