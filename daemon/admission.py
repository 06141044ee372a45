"""What every API checks before it accepts a request, in one place for the ZeroMQ and the HTTP API.

Both APIs parse their own wire format (`qwen_tray_client.protocol` for ZeroMQ, `qwen_tray.openai_api.convert`
for OpenAI-style JSON) and then come here for the decisions that must not differ between them:
the option ranges (`qwen_tray_client.protocol.option_problem`, pure so clients share it), images decoded
under the byte and pixel limits, text measured against the model's context, the daemon's
defaults for options a client left out, and the queue bound. A refusal is a `Refused` whose
`code` is the ZeroMQ protocol's rejection code; the HTTP API maps it to a status.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qwen_tray_client.protocol import option_problem

from .engine.base import GenerationOptions
from .images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageRejected, decode_image, raw_image
from .jobs import Busy, Job

if TYPE_CHECKING:
    from PIL import Image

MAX_BYTES_PER_TOKEN = 8  # text more than 8 bytes per context token is refused without tokenizing it


class Refused(Exception):
    """Not accepted: `code` is bad_request | bad_image | too_large | busy, `message` says what to change."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RequestedOptions:
    """Options as a client sent them (None = not given: the daemon's default applies)."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None


class Admission:
    """The daemon's limits and defaults, applied the same way to every API's requests."""

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        defaults: GenerationOptions = GenerationOptions(),
        context_tokens: Callable[[], int] | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.defaults = defaults
        self._context_tokens = context_tokens
        self._count_tokens = count_tokens

    def check_option(self, key: str, value: Any, name: str | None = None) -> None:
        """Refuse an option value outside the protocol's range; `name` is how the client spelled it."""
        if value is not None and (problem := option_problem(key, value)) is not None:
            raise Refused("bad_request", f"{name or key} {problem}")

    def options(self, requested: RequestedOptions) -> GenerationOptions:
        """The client's options over the daemon's `[generation]` defaults."""
        d, r = self.defaults, requested
        return GenerationOptions(
            max_new_tokens=r.max_new_tokens if r.max_new_tokens is not None else d.max_new_tokens,
            temperature=r.temperature if r.temperature is not None else d.temperature,
            top_p=r.top_p if r.top_p is not None else d.top_p,
            stop=r.stop if r.stop is not None else d.stop,
        )

    def image(self, data: bytes, what: str, raw: tuple[int, int, str] | None = None) -> Image.Image:
        """Decode an encoded (PNG, JPEG, WebP, BMP) or raw (width, height, mode) image under the limits."""
        try:
            if raw is None:
                return decode_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, what=what)
            return raw_image(data, *raw, max_bytes=self.max_bytes, max_pixels=self.max_pixels, what=what)
        except ImageRejected as exc:
            raise Refused(exc.code, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a decoder bug on hostile input is still a bad image
            raise Refused("bad_image", f"{what} could not be decoded ({type(exc).__name__})") from None

    def check_context(self, texts: Sequence[str]) -> None:
        """Refuse text that cannot fit the model's context (`too_large`), tokenizing only when in doubt."""
        if self._context_tokens is None:
            return
        limit = self._context_tokens()
        nbytes = sum(len(t.encode("utf-8")) for t in texts)
        if nbytes <= limit:  # a token is at least one byte
            return
        tokens = None
        if nbytes <= MAX_BYTES_PER_TOKEN * limit and self._count_tokens is not None:
            tokens = sum(self._count_tokens(t) for t in texts)
            if tokens <= limit:
                return
        size = f"{tokens} tokens" if tokens is not None else f"{nbytes} bytes"
        raise Refused("too_large", f"the text is {size}, more than the model's context of {limit} tokens: shorten it")


def submit(scheduler: Any, job: Job) -> int:
    """Queue the job; a full queue (or a stopping daemon) is `busy`."""
    try:
        return int(scheduler.submit(job))
    except Busy as exc:
        raise Refused("busy", str(exc)) from None
