"""The engine interface every backend implements, and the values it exchanges.

Why a tiny interface: the scheduler, the CLI, the popup and the IPC server talk
to "an engine" and never to openvino_genai or optimum-intel directly, so a
backend can change without touching them, and a test double stays honest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from PIL import Image

    from ..budget import Trimmed
    from .placement import Placement

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled"]
OnChunk = Callable[[str], None]


class EngineError(RuntimeError):
    """The engine could not load or could not answer; the message is for a person."""


@dataclass
class Message:
    """One chat turn. Images belong to the turn and stay with it in later turns."""

    role: Role
    text: str = ""
    images: list[Image.Image] = field(default_factory=list)


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings. temperature 0 means greedy."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    min_new_tokens: int = 0  # benchmarks force a fixed output length with min = max


@dataclass(frozen=True)
class Figures:
    """Per-request numbers a person or a benchmark wants to see."""

    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float
    total_ms: float
    tokens_per_s: float  # decode speed after the first token


@dataclass(frozen=True)
class GenerationResult:
    text: str
    finish_reason: FinishReason
    figures: Figures
    trimmed: Trimmed | None = None  # what the prompt budget left out of the conversation (qwen_tray.budget)


class Engine(Protocol):
    """A loaded model that answers one request at a time (the scheduler serialises calls)."""

    backend: str
    model_dir: str
    placement: Placement

    def generate(
        self,
        messages: Sequence[Message],
        options: GenerationOptions,
        on_chunk: OnChunk,
        cancel: threading.Event,
    ) -> GenerationResult:
        """Stream text chunks to `on_chunk`; stop at the next token once `cancel` is set."""
        ...

    def count_text_tokens(self, text: str) -> int:
        """Tokens the text alone would take (used to size the image budget and reject overlong text)."""
        ...

    def close(self) -> None:
        """Release the model (idle unload, shutdown)."""
        ...
