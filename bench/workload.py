"""The benchmark's workload and the process figures every path reports the same way.

Why shared: the three paths must see the same image, the same question and the
same forced output length, and their CPU and memory must be read by one method,
or the side-by-side table compares methods instead of paths.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

# The seed's workload: ~650 prompt tokens. An 800x800 image is 25x25 = 625 vision tokens
# (one per 32x32 px); the question and the chat template bring the rest.
QUESTION = "Describe this screenshot in detail: which windows, text and controls are visible?"
FOLLOW_UP = "And what should I click next?"
DEFAULT_SIZE = (800, 800)


def noise_image(seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> Any:
    """A fresh random RGB image per seed: VLMPipeline caches prompt prefixes, so a repeated
    image would measure that cache, not the first question."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB")


def png_bytes(image: Any) -> bytes:
    """PNG as a screenshot tool would hand it over (fast compression level: what mss/PIL tools use)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def screen_frame(width: int = 1920, height: int = 1080) -> Any:
    """A screenshot-like frame (flat colours, windows, lines of text) so PNG compresses as a real one does."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (32, 52, 86))
    draw = ImageDraw.Draw(img)
    rng = np.random.default_rng(7)
    for w in range(6):
        x0, y0 = int(rng.integers(0, width - 700)), int(rng.integers(0, height - 500))
        x1, y1 = x0 + int(rng.integers(400, 700)), y0 + int(rng.integers(250, 500))
        draw.rectangle((x0, y0, x1, y1), fill=(245, 245, 245), outline=(90, 90, 90))
        draw.rectangle((x0, y0, x1, y0 + 28), fill=(60 + 30 * w, 90, 160))
        draw.text((x0 + 8, y0 + 8), f"Window {w} - editor.py", fill=(255, 255, 255))
        for line in range(y0 + 40, y1 - 16, 18):
            words = " ".join("".join(chr(97 + int(c)) for c in rng.integers(0, 26, int(rng.integers(2, 9))))
                             for _ in range(int(rng.integers(3, 12))))
            draw.text((x0 + 10, line), words, fill=(20, 20, 20))
    draw.rectangle((0, height - 40, width, height), fill=(20, 20, 20))
    return img


def peak_rss(pid: int | None = None) -> int | None:
    """Peak resident set size in bytes (VmHWM: includes the mapped weight pages the process touched)."""
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    if pid is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return None


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a whole process (all its threads) so far."""
    if pid is None or pid == os.getpid():
        t = os.times()
        return t.user + t.system
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


class Clock:
    """First-chunk and end times of one request, measured by the caller, the same for every path."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.cpu0 = cpu_seconds()
        self.first: float | None = None
        self.chunks = 0

    def chunk(self, text: str) -> None:
        if text:
            self.chunks += 1
            if self.first is None:
                self.first = time.perf_counter()

    def figures(self, tokens: int, prompt_tokens: int | None, text: str = "") -> dict[str, Any]:
        end = time.perf_counter()
        first = self.first or end
        decode_s = end - first
        return {
            "ttft_s": round(first - self.start, 4),
            "e2e_s": round(end - self.start, 4),
            "tokens": int(tokens),
            "prompt_tokens": prompt_tokens,
            "decode_tps": round((tokens - 1) / decode_s, 3) if tokens > 1 and decode_s > 0 else None,
            "cpu_s": round(cpu_seconds() - self.cpu0, 4),
            "chunks": self.chunks,
            "text_head": text[:40],
        }
