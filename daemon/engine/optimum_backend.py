"""The seed's code path: optimum-intel OVModelForVisualCausalLM + AutoProcessor.

Kept as a second backend because it is what the original prototype ran and what
benchmarks compare against. It needs torch (optimum-intel hands torch tensors
between its OpenVINO submodels), so it lives behind the `export` extra and is
imported only when chosen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from .base import EngineError, Figures, GenerationOptions, GenerationResult, Message, OnChunk
from .placement import Attempt, Placement
from .prompt import hf_messages


def _import() -> tuple[Any, Any, Any]:
    try:
        from optimum.intel import OVModelForVisualCausalLM
        from transformers import AutoProcessor, StoppingCriteria
    except ImportError as exc:
        raise EngineError(
            "the optimum backend needs the 'export' extra (torch, optimum-intel): "
            "run `pip install 'qwen-tray[export]'` or set model.backend = \"genai\""
        ) from exc
    return OVModelForVisualCausalLM, AutoProcessor, StoppingCriteria


class OptimumEngine:
    """OVModelForVisualCausalLM.generate with a streamer and a cancel check per token."""

    backend = "optimum"

    def __init__(self, model_dir: str, attempt: Attempt, placement: Placement) -> None:
        model_cls, processor_cls, self._stopping_cls = _import()
        self.model_dir = model_dir
        self.placement = placement
        ov_config = {k: v for k, v in attempt.properties.items() if k != "CACHE_DIR"}
        self._model = model_cls.from_pretrained(
            model_dir, device=attempt.device, ov_config=ov_config or None, compile=True
        )
        if cache := attempt.properties.get("CACHE_DIR"):
            self._model.ov_config["CACHE_DIR"] = cache
        self._processor = processor_cls.from_pretrained(model_dir)
        self._tokenizer = self._processor.tokenizer

    def count_text_tokens(self, text: str) -> int:
        return len(self._tokenizer(text)["input_ids"])

    def generate(
        self,
        messages: Sequence[Message],
        options: GenerationOptions,
        on_chunk: OnChunk,
        cancel: threading.Event,
    ) -> GenerationResult:
        import torch
        from transformers.generation.streamers import BaseStreamer

        chat, images = hf_messages(messages)
        prompt = self._processor.apply_chat_template(chat, add_generation_prompt=True)
        inputs = self._processor(text=[prompt], images=images or None, return_tensors="pt")
        n_prompt = int(inputs["input_ids"].shape[1])
        tokenizer = self._tokenizer
        state: dict[str, Any] = {"ids": [], "sent": "", "first": None, "skip_prompt": True}
        # Hold back text that could be the start of a stop string, so what was streamed
        # is exactly the answer (genai likewise leaves stop strings out).
        holdback = max((len(s) for s in options.stop), default=1) - 1
        stops = [s for s in options.stop if s]

        def emit(text: str, final: bool) -> None:
            if stops:
                cut = min((text.index(s) for s in stops if s in text), default=-1)
                if cut >= 0:
                    text, final = text[:cut], True
            if not final and holdback:
                text = text[: max(len(state["sent"]), len(text) - holdback)]
            new = text[len(state["sent"]):]
            if new and text.startswith(state["sent"]):
                state["sent"] = text
                on_chunk(new)

        class Streamer(BaseStreamer):
            """Decode the growing id list and send only the new, complete text."""

            def put(self, value: torch.Tensor) -> None:
                if state["skip_prompt"]:
                    state["skip_prompt"] = False
                    return
                state["ids"].extend(value.reshape(-1).tolist())
                if state["first"] is None:
                    state["first"] = time.perf_counter()
                text = tokenizer.decode(state["ids"], skip_special_tokens=True)
                if not text.endswith("\ufffd"):  # else an incomplete UTF-8 sequence: wait
                    emit(text, final=False)

            def end(self) -> None:
                emit(tokenizer.decode(state["ids"], skip_special_tokens=True), final=True)

        class Cancelled(self._stopping_cls):  # type: ignore[misc, name-defined]
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool)

        kwargs: dict[str, Any] = {
            "max_new_tokens": options.max_new_tokens,
            "min_new_tokens": options.min_new_tokens or None,
            "streamer": Streamer(),
            "stopping_criteria": [Cancelled()],
        }
        if options.temperature > 0:
            kwargs.update(do_sample=True, temperature=options.temperature, top_p=options.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if options.stop:
            kwargs.update(stop_strings=list(options.stop), tokenizer=tokenizer)
        started = time.perf_counter()
        try:
            self._model.generate(**inputs, **kwargs)
        except RuntimeError as exc:
            raise EngineError(f"generation failed: {str(exc).strip().splitlines()[-1]}") from exc
        ended = time.perf_counter()
        text = state["sent"]
        n_out = len(state["ids"])
        ttft_ms = (state["first"] - started) * 1000.0 if state["first"] else 0.0
        total_ms = (ended - started) * 1000.0
        decode_ms = total_ms - ttft_ms
        tps = (n_out - 1) * 1000.0 / decode_ms if n_out > 1 and decode_ms > 0 else 0.0
        if cancel.is_set():
            reason = "cancelled"
        elif n_out >= options.max_new_tokens:
            reason = "length"
        else:
            reason = "stop"
        return GenerationResult(
            text, reason, Figures(n_prompt, n_out, round(ttft_ms, 2), round(total_ms, 2), round(tps, 2))
        )

    def close(self) -> None:
        self._model = None
