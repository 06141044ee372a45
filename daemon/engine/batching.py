"""openvino_genai.ContinuousBatchingPipeline on CPU/GPU: several requests share every step.

Why: with one loaded model, the popup and several apps must not wait for each
other's whole answers. Requests join and leave at token boundaries; a newcomer's
prefill is split into chunks that share steps with the others' decode tokens
(genai's dynamic split-fuse), so a popup question starts at once. Prefix caching is on:
a follow-up reuses the KV blocks of the conversation it continues. The KV cache grows
with the running requests (`kv_cache_gb` = 0, the default) or is one fixed pool
(`kv_cache_gb` > 0, cached blocks kept until the pool is full). It goes with the engine
on idle unload. On by default (`[engine] batching`); docs/decisions.md says why and what
the memory does.

The scheduler drives it from its one worker thread: `start()` per request (renders
the prompt and encodes its images), `step()` for one token boundary of all running
requests, then `poll()` on each to deliver its text. `generate()` runs one request
alone the same way (CLI, benchmarks). The NPU has no continuous batching: there
the plain VLMPipeline engine runs one request at a time.

Follow-ups without encoding the image again (`[engine] reuse_images`, off by default: genai
2026.4 then misses its prefix cache and prefills the whole conversation again, which costs
more than the encoder on CPU; see docs/decisions.md): genai keeps encoded images only inside a
`ChatHistory` (its VisionRegistry). When the engine is otherwise idle, the scheduler runs
a new conversation, or the next turn of the conversation this engine answered last, "solo"
(`generate_solo`) through genai's history path, and remembers that one conversation (keyed
by its exact messages, including the answer this engine gave). Checked on genai 2026.4:
that path gives the one-prompt rendering's tokens only when the earlier assistant turns are
the engine's own answers, and its state is per pipeline, not per history (a follow-up of
conversation B right after a follow-up of A came out different from B alone). So anything
else (an edited answer, another request in between) is rendered as one prompt. A solo
request is preemptible: when other work arrives it stops at a token and continues inside
the batch.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence

import openvino_genai as ov_genai

from .base import EngineError, Figures, GenerationOptions, GenerationResult, Message, OnChunk
from .genai_backend import Streamer, generation_config, to_tensor
from .placement import Attempt, Placement
from .prompt import neutralise_tags, render_genai

_RUNNING = ov_genai.GenerationStatus.RUNNING
_CANCEL = ov_genai.GenerationStatus.CANCEL
_IGNORED = ov_genai.GenerationStatus.IGNORED
_ENCODED_US = 100.0  # a vision-encoding duration at least this long was an encode, not a registry lookup


def _short(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


class Detokenizer:
    """Incremental detokenization of one request's tokens (what genai's TextStreamer does, minus its flaw).

    genai's Python TextStreamer hands its callback a strictly decoded str, so a model that emits a
    byte sequence that is not UTF-8 (the random fixture does; a real model can) raised in the
    callback and failed the request. `Tokenizer.decode` replaces such bytes with U+FFFD. Text is
    delivered once it no longer ends in U+FFFD (an incomplete character waits for its next token);
    each token is decoded with a few tokens before it, so the work per token stays constant.
    """

    def __init__(self, tokenizer: ov_genai.Tokenizer, on_text: Callable[[str], object]) -> None:
        self._tok = tokenizer
        self._on_text = on_text
        self._ids: list[int] = []
        self._prefix = 0  # _ids[_prefix:_read] is the context already delivered
        self._read = 0

    def write(self, ids: Sequence[int]) -> None:
        self._ids.extend(ids)
        before = self._tok.decode(self._ids[self._prefix:self._read]) if self._read > self._prefix else ""
        text = self._tok.decode(self._ids[self._prefix:])
        if text.endswith("\ufffd") or len(text) <= len(before) or not text.startswith(before):
            return  # an incomplete character (or nothing new): wait for the next token
        self._on_text(text[len(before):])
        self._prefix, self._read = self._read, len(self._ids)

    def end(self) -> None:
        """Deliver what is held back (an incomplete character at the very end comes out as U+FFFD)."""
        if self._read < len(self._ids):
            before = self._tok.decode(self._ids[self._prefix:self._read]) if self._read > self._prefix else ""
            text = self._tok.decode(self._ids[self._prefix:])
            if len(text) > len(before) and text.startswith(before):
                self._on_text(text[len(before):])
            self._read = len(self._ids)


class BatchRequest:
    """One running request: its genai handle, its detokenizer and what it has delivered."""

    def __init__(self, handle: ov_genai.GenerationHandle, tokenizer: ov_genai.Tokenizer, options: GenerationOptions,
                 on_chunk: OnChunk, cancel: threading.Event, started: float, n_images: int = 0) -> None:
        self.n_images = n_images  # its images went through the vision encoder when it was added
        self._handle = handle
        self._options = options
        self._on_chunk = on_chunk
        self._cancel = cancel
        self._started = started
        self._first_at = 0.0
        self._ended_at = 0.0
        self._n_out = 0
        self._text: list[str] = []
        self._cancelled = False
        self._done = False
        self._streamer = Detokenizer(tokenizer, self._on_text)

    def _on_text(self, text: str) -> None:
        if text and not self._cancel.is_set():
            if not self._first_at:
                self._first_at = time.perf_counter()
            self._text.append(text)
            self._on_chunk(text)

    def poll(self) -> bool:
        """Deliver the text of the tokens the last step produced; True once the request has ended.

        Once `cancel` is set nothing more is delivered and the request is cancelled in genai
        (its KV blocks are freed at the next step).
        """
        if self._done:
            return True
        if self._cancel.is_set():
            self._handle.cancel()
            return self._end(cancelled=True)
        while self._handle.can_read():
            for out in self._handle.read().values():
                ids = list(out.generated_ids)
                if ids:
                    self._n_out += len(ids)
                    self._streamer.write(ids)
            if self._cancel.is_set():
                self._handle.cancel()
                return self._end(cancelled=True)
        status = self._handle.get_status()
        if status == _RUNNING:
            return False
        if status == _CANCEL:
            return self._end(cancelled=True)
        if status == _IGNORED:  # genai drops a request the KV pool cannot hold
            self._end(cancelled=True)
            raise EngineError("the request does not fit the KV cache: raise [engine] kv_cache_gb (0 = grow as needed)")
        self._streamer.end()  # the detokenizer holds back incomplete UTF-8 until the end
        return self._end(cancelled=self._cancel.is_set())

    def cancel(self) -> None:
        """End it now (engine failure, shutdown): nothing more is delivered."""
        if not self._done:
            self._handle.cancel()
            self._end(cancelled=True)

    def _end(self, cancelled: bool) -> bool:
        self._cancelled = cancelled
        self._done = True
        self._ended_at = time.perf_counter()
        return True

    def result(self) -> GenerationResult:
        """The request's text and figures (after `poll` returned True)."""
        try:
            prompt_tokens = int(self._handle.get_perf_metrics().get_num_input_tokens())
        except RuntimeError:
            prompt_tokens = 0
        total_ms = (self._ended_at - self._started) * 1000.0
        ttft_ms = (self._first_at - self._started) * 1000.0 if self._first_at else 0.0
        decode_ms = (self._ended_at - self._first_at) * 1000.0 if self._first_at else 0.0
        n = self._n_out
        tps = (n - 1) * 1000.0 / decode_ms if n > 1 and decode_ms > 0 else 0.0
        if self._cancelled:
            reason = "cancelled"
        elif n >= self._options.max_new_tokens:
            reason = "length"
        else:
            reason = "stop"
        figures = Figures(prompt_tokens, n, round(ttft_ms, 2), round(total_ms, 2), round(tps, 2))
        return GenerationResult("".join(self._text), reason, figures)


def fingerprint(messages: Sequence[Message]) -> str:
    """Identity of a conversation: roles, texts and the pixels of every image, in order."""
    h = hashlib.sha256()
    for m in messages:
        h.update(f"\x00{m.role}\x00{len(m.text)}\x00{m.text}\x00{len(m.images)}".encode())
        for img in m.images:
            rgb = img if img.mode == "RGB" else img.convert("RGB")
            h.update(f"{rgb.width}x{rgb.height}".encode())
            h.update(rgb.tobytes())
    return h.hexdigest()


class BatchingEngine:
    """ContinuousBatchingPipeline with prefix caching on the CPU or GPU an `Attempt` names."""

    backend = "genai"
    batching = True

    preemptible = True  # a conversation ending in an assistant message continues it

    def __init__(self, model_dir: str, attempt: Attempt, placement: Placement, *, max_batch: int = 4,
                 kv_cache_gb: int = 0, reuse_images: bool = False) -> None:
        self.model_dir = model_dir
        self.placement = placement
        self.max_batch = max_batch
        self._reuse_images = reuse_images
        self.reuses_images = reuse_images  # the scheduler asks before it tries a job solo
        self._last: tuple[str, ov_genai.ChatHistory] | None = None  # the conversation answered last, solo
        self.vision_encodings = 0  # images the vision encoder ran on, all requests (status, tests)
        sched = ov_genai.SchedulerConfig()
        sched.enable_prefix_caching = True
        sched.cache_size = kv_cache_gb
        sched.dynamic_split_fuse = True
        props = dict(attempt.properties)
        self._pipe = ov_genai.ContinuousBatchingPipeline(model_dir, sched, attempt.device, props, {}, props)
        self._tokenizer = self._pipe.get_tokenizer()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # start/step from one thread at a time (the scheduler's worker)

    def count_text_tokens(self, text: str) -> int:
        return int(self._tokenizer.encode(text).input_ids.get_shape()[1])

    def start(self, messages: Sequence[Message], options: GenerationOptions, on_chunk: OnChunk,
              cancel: threading.Event) -> BatchRequest:
        """Add a request; its prefill runs in the next steps. Encodes its images now."""
        prompt, images = render_genai(self._tokenizer, messages)
        cfg = generation_config(self._pipe.get_config(), options)
        self._last = None  # another request touches genai's state: the next follow-up is rendered anew
        started = time.perf_counter()
        try:
            with self._lock:
                handle = self._pipe.add_request(next(self._ids), prompt, [to_tensor(i) for i in images], cfg)
        except RuntimeError as exc:
            raise EngineError(f"generation failed: {_short(exc)}") from exc
        self.vision_encodings += len(images)  # add_request encodes every image of the prompt
        return BatchRequest(handle, self._tokenizer, options, on_chunk, cancel, started, len(images))

    def step(self) -> None:
        """One token boundary for every running request (or one chunk of a newcomer's prefill)."""
        try:
            with self._lock:
                if self._pipe.has_non_finished_requests():
                    self._pipe.step()
        except RuntimeError as exc:
            raise EngineError(f"generation failed: {_short(exc)}") from exc

    def solo_ok(self, messages: Sequence[Message]) -> bool:
        """True when `generate_solo` can serve this conversation: a new one, or a follow-up it remembers."""
        if not self._reuse_images or not messages or messages[-1].role != "user":
            return False
        if len(messages) == 1 or (len(messages) == 2 and messages[0].role == "system"):
            return True
        return self._last is not None and fingerprint(messages[:-1]) == self._last[0]

    def generate_solo(self, messages: Sequence[Message], options: GenerationOptions, on_chunk: OnChunk,
                      cancel: threading.Event) -> GenerationResult:
        """One request through genai's ChatHistory path: earlier images are not encoded again.

        Only while no other request is in the engine (genai refuses otherwise). Stops at the next
        token once `cancel` is set (the scheduler sets it to preempt); the conversation is then
        forgotten and the request can continue elsewhere from its partial answer.
        """
        prior = fingerprint(messages[:-1]) if len(messages) > 1 else ""
        history = self._last[1] if self._last is not None and prior == self._last[0] else None
        self._last = None  # from here on genai's chat state is this request's
        last = messages[-1]
        if history is None:
            history = ov_genai.ChatHistory([{"role": m.role, "content": neutralise_tags(m.text)} for m in messages])
        else:
            history.append({"role": "user", "content": neutralise_tags(last.text)})
        cfg = generation_config(self._pipe.get_config(), options)
        cfg.apply_chat_template = True  # genai renders the history itself
        streamer = Streamer(on_chunk, cancel)
        started = time.perf_counter()
        try:
            with self._lock:
                result = self._pipe.generate([history], [[to_tensor(i) for i in last.images]], [cfg], streamer)[0]
        except RuntimeError as exc:
            raise EngineError(f"generation failed: {_short(exc)}") from exc
        ended = time.perf_counter()
        # genai records a duration (µs) for every call; a VisionRegistry hit records its lookup, 0-1 µs
        # (1 µs on a busy machine), an encode even of the tiny fixture's smallest image takes milliseconds
        self.vision_encodings += sum(1 for d in result.perf_metrics.vlm_raw_metrics.vision_encoding_durations
                                     if d >= _ENCODED_US)
        full = result.texts[0] if result.texts else ""
        text = streamer.finish(full)
        pm = result.perf_metrics
        n_out = int(pm.get_num_generated_tokens())
        if streamer.interrupted:
            reason = "cancelled"
        else:
            reason = "length" if n_out >= options.max_new_tokens else "stop"
            if text == full:  # remember it for the next follow-up: the history ends with our own answer
                history.append({"role": "assistant", "content": full})
                self._last = (fingerprint([*messages, Message("assistant", full)]), history)
        ttft_ms = (streamer.first_at - started) * 1000.0 if streamer.first_at else 0.0
        total_ms = (ended - started) * 1000.0
        decode_ms = total_ms - ttft_ms
        tps = (n_out - 1) * 1000.0 / decode_ms if n_out > 1 and decode_ms > 0 else 0.0
        figures = Figures(int(pm.get_num_input_tokens()), n_out, round(ttft_ms, 2), round(total_ms, 2), round(tps, 2))
        return GenerationResult(text, reason, figures)  # type: ignore[arg-type]

    def busy(self) -> bool:
        """True while genai still holds requests (cancelled ones are freed at the next step)."""
        with self._lock:
            return bool(self._pipe.has_non_finished_requests())

    def generate(self, messages: Sequence[Message], options: GenerationOptions, on_chunk: OnChunk,
                 cancel: threading.Event) -> GenerationResult:
        """One request alone, start to end (the scheduler uses start/step/poll instead)."""
        request = self.start(messages, options, on_chunk, cancel)
        try:
            while not request.poll():
                self.step()
        except BaseException:
            request.cancel()
            raise
        finally:
            while self.busy():
                self.step()
        return request.result()

    def close(self) -> None:
        self._last = None  # its encoded images go with it
        self._pipe = None  # type: ignore[assignment]
