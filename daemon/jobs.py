"""What a request to the engine is, and how its events get back to whoever asked.

Shared by the scheduler (which runs jobs), the IPC server and the popup (which
submit them). A sink is called from the scheduler's worker thread: it must not
block and must not touch Tk widgets or ZeroMQ sockets directly (hand off through
a queue or an inproc socket instead).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from .engine.base import GenerationOptions, GenerationResult, Message

if TYPE_CHECKING:
    from .budget import Trimmed

Priority = Literal["interactive", "background"]
ErrorCode = Literal["engine_error", "timeout", "shutting_down"]

_ids = itertools.count(1)


class JobSink(Protocol):
    """Receives one job's events. Exactly one of on_done / on_error is called, once."""

    def on_start(self) -> None:
        """The worker picked the job up (the popup shows 'thinking')."""

    def on_chunk(self, text: str) -> None:
        """The next piece of the answer."""

    def on_done(self, result: GenerationResult, queue_ms: float, demo: bool) -> None:
        """Finished: stop, length or cancelled (result.finish_reason)."""

    def on_error(self, code: ErrorCode, message: str, partial_text: str) -> None:
        """Failed: the engine raised, the time limit passed, or the daemon is stopping."""


@dataclass
class Job:
    """One generate request. `cancel` may be set from any thread."""

    messages: list[Message]
    options: GenerationOptions
    sink: JobSink
    priority: Priority = "background"
    label: str = ""  # for logs: client and request id, never content
    seq: int = field(default_factory=lambda: next(_ids))
    cancel: threading.Event = field(default_factory=threading.Event)
    trimmed: Trimmed | None = None  # set on the worker when the prompt budget trimmed the conversation
    ended: bool = False  # the scheduler has called on_done or on_error (its safety net must not call twice)


class Busy(Exception):
    """The queue is full; the request was not accepted."""
