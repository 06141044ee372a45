"""The default engine: openvino_genai.VLMPipeline.

Each request is stateless: the whole conversation is rendered with the model's
chat template (images as genai's universal tags) and passed with all its images.
VLMPipeline reuses the KV cache for a prompt prefix it has seen, so a follow-up
question does not pay for the first image again. `generate` releases the GIL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import openvino as ov
import openvino_genai as ov_genai

from .base import EngineError, Figures, GenerationOptions, GenerationResult, Message, OnChunk
from .placement import Attempt, Placement
from .prompt import render_genai


def to_tensor(image: Any) -> ov.Tensor:
    """A PIL image as the [1, H, W, 3] uint8 tensor genai takes."""
    arr = np.asarray(image.convert("RGB") if image.mode != "RGB" else image, dtype=np.uint8)
    return ov.Tensor(np.ascontiguousarray(arr[None]))


def generation_config(cfg: ov_genai.GenerationConfig, options: GenerationOptions) -> ov_genai.GenerationConfig:
    """`cfg` (the model's defaults) set to `options`; the prompt is already rendered, with image tags."""
    cfg.max_new_tokens = options.max_new_tokens
    cfg.min_new_tokens = options.min_new_tokens
    cfg.apply_chat_template = False  # we render the template ourselves, with image tags
    if options.temperature > 0:
        cfg.do_sample = True
        cfg.temperature = options.temperature
        cfg.top_p = options.top_p
    else:
        cfg.do_sample = False
    if options.stop:
        cfg.stop_strings = set(options.stop)
        cfg.include_stop_str_in_output = False
    return cfg


class Streamer:
    """genai's streamer callback for one request: forwards chunks, notes the first one's time, stops on cancel.

    genai calls it from threads of its own; `interrupted` tells a cancelled answer from one that ended.
    """

    def __init__(self, on_chunk: OnChunk, cancel: threading.Event) -> None:
        self._on_chunk = on_chunk
        self._cancel = cancel
        self.chunks: list[str] = []
        self.first_at = 0.0
        self.interrupted = False

    def __call__(self, chunk: str) -> ov_genai.StreamingStatus:
        if not self._cancel.is_set() and chunk:
            if not self.first_at:
                self.first_at = time.perf_counter()
            self.chunks.append(chunk)
            self._on_chunk(chunk)
        if self._cancel.is_set():
            self.interrupted = True
            return ov_genai.StreamingStatus.CANCEL
        return ov_genai.StreamingStatus.RUNNING

    def finish(self, full: str) -> str:
        """The answer: what was streamed, plus the tail the detokenizer held back (incomplete UTF-8) if any."""
        text = "".join(self.chunks)
        if not self._cancel.is_set() and full.startswith(text) and len(full) > len(text):
            tail = full[len(text):]
            self.chunks.append(tail)
            self._on_chunk(tail)
            text = full
        return text


class GenaiEngine:
    """VLMPipeline on the device an `Attempt` names."""

    backend = "genai"
    preemptible = True  # a conversation ending in an assistant message continues it (see prompt.render_genai)

    def __init__(self, model_dir: str, attempt: Attempt, placement: Placement) -> None:
        self.model_dir = model_dir
        self.placement = placement
        self._pipe = ov_genai.VLMPipeline(model_dir, attempt.device, **attempt.properties)
        self._tokenizer = self._pipe.get_tokenizer()

    def count_text_tokens(self, text: str) -> int:
        return int(self._tokenizer.encode(text).input_ids.get_shape()[1])

    def generate(
        self,
        messages: Sequence[Message],
        options: GenerationOptions,
        on_chunk: OnChunk,
        cancel: threading.Event,
    ) -> GenerationResult:
        prompt, images = render_genai(self._tokenizer, messages)
        streamer = Streamer(on_chunk, cancel)
        started = time.perf_counter()
        try:
            result = self._pipe.generate(
                prompt,
                images=[to_tensor(i) for i in images],
                generation_config=generation_config(self._pipe.get_generation_config(), options),
                streamer=streamer,
            )
        except RuntimeError as exc:
            raise EngineError(f"generation failed: {str(exc).strip().splitlines()[-1]}") from exc
        ended = time.perf_counter()
        text = streamer.finish(result.texts[0] if result.texts else "")
        pm = result.perf_metrics
        n_out = int(pm.get_num_generated_tokens())
        ttft_ms = float(pm.get_ttft().mean) if n_out else 0.0
        total_ms = (ended - started) * 1000.0
        decode_ms = total_ms - ttft_ms
        tps = (n_out - 1) * 1000.0 / decode_ms if n_out > 1 and decode_ms > 0 else 0.0
        if streamer.interrupted:
            reason = "cancelled"
        elif n_out >= options.max_new_tokens:
            reason = "length"
        else:
            reason = "stop"
        figures = Figures(int(pm.get_num_input_tokens()), n_out, round(ttft_ms, 2), round(total_ms, 2), round(tps, 2))
        return GenerationResult(text, reason, figures)

    def close(self) -> None:
        self._pipe = None  # type: ignore[assignment]
