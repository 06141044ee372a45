"""One benchmark path in its own process, driven by JSON lines on stdin/stdout.

Why a process per path: peak memory and CPU seconds are per process, and a
path's imports (torch for optimum-intel) must not sit in another path's figures.
The three paths:

  genai   - openvino_genai.VLMPipeline called directly, as a user would (ChatHistory for the follow-up)
  optimum - the seed's code: OVModelForVisualCausalLM.generate with the AutoProcessor chat template
  client  - the `ipc` client talking to a running daemon (the daemon is another process)

    python bench/worker.py genai --model DIR [--cache DIR]
    -> {"event": "ready", ...}; then {"op": "ask" | "follow" | "stats" | "quit", ...} per line

Only JSON crosses the pipe. Library output goes to stderr (fd 1 is redirected) so
it cannot corrupt the protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from workload import Clock, cpu_seconds, noise_image, peak_rss, png_bytes  # noqa: E402

import qwen_tray.privacy  # noqa: E402,F401 - OpenVINO telemetry off before openvino_genai/optimum load


class GenaiPath:
    """VLMPipeline as its documentation shows it: a plain question, images=, a streamer, ChatHistory."""

    def __init__(self, model: str, cache: str | None) -> None:
        import openvino_genai as ov_genai

        self.g = ov_genai
        props = {"CACHE_DIR": cache} if cache else {}
        self.pipe = ov_genai.VLMPipeline(model, "CPU", **props)
        self.history: Any = None
        self.image: Any = None

    def _run(self, new_tokens: int, min_tokens: int, images: list) -> dict[str, Any]:
        cfg = self.pipe.get_generation_config()
        cfg.max_new_tokens = new_tokens
        cfg.min_new_tokens = min_tokens
        cfg.do_sample = False
        clock = Clock()

        def streamer(text: str) -> Any:
            clock.chunk(text)
            return self.g.StreamingStatus.RUNNING

        kwargs = {"images": images} if images else {}
        res = self.pipe.generate(self.history, generation_config=cfg, streamer=streamer, **kwargs)
        pm = res.perf_metrics
        text = res.texts[0]
        self.history.append({"role": "assistant", "content": text})
        fig = clock.figures(pm.get_num_generated_tokens(), pm.get_num_input_tokens(), text)
        fig["engine_ttft_s"] = round(pm.get_ttft().mean / 1000, 4)
        return fig

    def ask(self, image: Any, question: str, new_tokens: int, min_tokens: int) -> dict[str, Any]:
        import numpy as np
        import openvino as ov

        self.history = self.g.ChatHistory()
        self.history.append({"role": "user", "content": question})
        tensor = ov.Tensor(np.asarray(image, dtype=np.uint8)[None])
        return self._run(new_tokens, min_tokens, [tensor])

    def follow(self, question: str, new_tokens: int, min_tokens: int) -> dict[str, Any]:
        self.history.append({"role": "user", "content": question})
        return self._run(new_tokens, min_tokens, [])


class OptimumPath:
    """The seed's prototype: optimum-intel's OVModelForVisualCausalLM with the processor's chat template."""

    def __init__(self, model: str, cache: str | None) -> None:
        from optimum.intel import OVModelForVisualCausalLM
        from transformers import AutoProcessor

        self.model = OVModelForVisualCausalLM.from_pretrained(
            model, device="CPU", ov_config={"CACHE_DIR": cache} if cache else None
        )
        self.processor = AutoProcessor.from_pretrained(model)
        self.messages: list[dict[str, Any]] = []
        self.image: Any = None

    def _run(self, new_tokens: int, min_tokens: int) -> dict[str, Any]:
        from transformers.generation.streamers import BaseStreamer

        clock = Clock()
        prompt = self.processor.apply_chat_template(self.messages, add_generation_prompt=True)
        inputs = self.processor(text=[prompt], images=[self.image], return_tensors="pt")
        n_prompt = int(inputs["input_ids"].shape[1])
        ids: list[int] = []

        class Streamer(BaseStreamer):
            skip = True

            def put(self, value: Any) -> None:
                if self.skip:  # the first put is the prompt
                    self.skip = False
                    return
                ids.extend(value.reshape(-1).tolist())
                clock.chunk("x")

            def end(self) -> None:
                pass

        self.model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=min_tokens or None,
                            do_sample=False, temperature=None, top_p=None, top_k=None, streamer=Streamer())
        text = self.processor.tokenizer.decode(ids, skip_special_tokens=True)
        self.messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
        return clock.figures(len(ids), n_prompt, text)

    def ask(self, image: Any, question: str, new_tokens: int, min_tokens: int) -> dict[str, Any]:
        self.image = image
        self.messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self._run(new_tokens, min_tokens)

    def follow(self, question: str, new_tokens: int, min_tokens: int) -> dict[str, Any]:
        self.messages.append({"role": "user", "content": [{"type": "text", "text": question}]})
        return self._run(new_tokens, min_tokens)


class ClientPath:
    """A local app using the daemon: the image as PNG bytes, the answer streamed through `qwen_tray_client.client`."""

    def __init__(self, connection: str) -> None:
        from qwen_tray_client.client import Client

        self.client = Client(connection, timeout=120.0)
        self.client.ping()
        self.messages: list[dict[str, Any]] = []
        self.blob = b""

    def _run(self, new_tokens: int) -> dict[str, Any]:
        clock = Clock()
        answer = self.client.generate(self.messages, [self.blob], max_new_tokens=new_tokens)
        for chunk in answer:
            clock.chunk(chunk)
        done = answer.result or {}
        usage = done.get("usage", {})
        text = done.get("text", answer.text)
        self.messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
        fig = clock.figures(usage.get("completion_tokens", 0), usage.get("prompt_tokens"), text)
        fig["finish_reason"] = done.get("finish_reason")
        fig["daemon_timings"] = done.get("timings")
        return fig

    def ask(self, image: Any, question: str, new_tokens: int, min_tokens: int) -> dict[str, Any]:
        # min_new_tokens is not a protocol option: 128 are asked for and `usage.completion_tokens`
        # shows how many came (random weights rarely emit the end token).
        self.blob = png_bytes(image)  # encoded before the clock starts: a client hands over a file it has
        content = [{"type": "image", "blob": 0}, {"type": "text", "text": question}]
        self.messages = [{"role": "user", "content": content}]
        return self._run(new_tokens)

    def follow(self, question: str, new_tokens: int, min_tokens: int) -> dict[str, Any]:
        self.messages.append({"role": "user", "content": [{"type": "text", "text": question}]})
        return self._run(new_tokens)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", choices=("genai", "optimum", "client"))
    ap.add_argument("--model", default="")
    ap.add_argument("--cache", default="")
    ap.add_argument("--connection", default="")
    args = ap.parse_args()

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr
    sys.stdout = sys.stderr

    def send(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    t0 = time.perf_counter()
    cpu0 = cpu_seconds()
    try:
        if args.path == "genai":
            path: Any = GenaiPath(args.model, args.cache or None)
        elif args.path == "optimum":
            path = OptimumPath(args.model, args.cache or None)
        else:
            path = ClientPath(args.connection)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops the run
        send({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"event": "ready", "load_s": round(time.perf_counter() - t0, 3), "load_cpu_s": round(cpu_seconds() - cpu0, 3),
          "pid": os.getpid()})
    for line in sys.stdin:
        req = json.loads(line)
        op = req.get("op")
        try:
            if op == "ask":
                image = noise_image(req["seed"], tuple(req["size"]))
                out = path.ask(image, req["question"], req["max_new_tokens"], req.get("min_new_tokens", 0))
            elif op == "follow":
                out = path.follow(req["question"], req["max_new_tokens"], req.get("min_new_tokens", 0))
            elif op == "stats":
                out = {"peak_rss": peak_rss(), "cpu_s": round(cpu_seconds(), 3)}
            elif op == "quit":
                send({"event": "bye"})
                return 0
            else:
                out = {"error": f"unknown op {op!r}"}
        except Exception as exc:  # noqa: BLE001
            out = {"error": f"{type(exc).__name__}: {exc}"}
        send({"event": "result", **out})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
