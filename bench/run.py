"""Benchmark the daemon against VLMPipeline in-process and the seed's optimum-intel path, on one model.

The seed's workload: one image and a question giving ~650 prompt tokens, 128
generated tokens (forced where the API allows), greedy. Three paths, each in its
own process, interleaved A B C A B C after a warm-up:

  (a) daemon  - `qwen-tray run --headless`, asked through `qwen_tray_client.client` (streaming)
  (b) genai   - openvino_genai.VLMPipeline called directly
  (c) optimum - optimum-intel OVModelForVisualCausalLM.generate + AutoProcessor (the seed's code)

Beside that: follow-up time to first token, idle CPU of the loaded daemon,
desktop latency (Xvfb), IPC overhead (tiny model), concurrency (1/2/4 clients),
and the memory-bandwidth ceiling. Results go to a JSON file; `bench/report.py`
turns it into docs/benchmarks.md and docs/benchmarks.png.

    python bench/run.py                       # 4B stand-in (built on first use), full run -> docs/
    python bench/run.py --shape 2b --rounds 3
    python bench/run.py --smoke --out-dir /tmp/bench   # tiny model, a minute: what CI runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import machine  # noqa: E402
from procs import BenchError, Daemon, Worker  # noqa: E402
from workload import (  # noqa: E402
    DEFAULT_SIZE,
    FOLLOW_UP,
    QUESTION,
    cpu_seconds,
    noise_image,
    peak_rss,
    png_bytes,
    screen_frame,
)

TINY = ROOT / "tests" / "fixtures" / "tiny-qwen3-vl-ov"
PATHS = ("daemon", "genai", "optimum")
LABELS = {"daemon": "(a) daemon via ipc client", "genai": "(b) VLMPipeline in-process",
          "optimum": "(c) optimum-intel generate (seed)"}
SECTIONS = ("core", "idle", "concurrency", "speed", "ipc", "desktop", "bandwidth")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def summary(values: list[float | None]) -> dict[str, Any] | None:
    """Median and spread (min, max) of the values that exist."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": round(statistics.median(vals), 4), "min": round(min(vals), 4), "max": round(max(vals), 4),
            "n": len(vals)}


def busy_others() -> list[str]:
    """Other people's test runs on this machine (their CPU would land in our figures)."""
    try:
        out = subprocess.run(["pgrep", "-af", "pytest"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [ln for ln in out.splitlines() if "test_bench_smoke" not in ln]


def wait_quiet(max_wait_s: float, busy_limit: float = 20.0) -> dict[str, Any]:
    """Wait (up to `max_wait_s`) until no other test run is going and the CPUs are idle.

    Called between rounds and sections on a shared machine, when the benchmark's own processes
    are idle, so whatever keeps the CPUs busy (over `busy_limit` % in a 5 s sample) is someone
    else. The load average is not used: it still holds our own last round for a minute.
    """
    import psutil

    t0 = time.perf_counter()
    while True:
        others = busy_others()
        busy = psutil.cpu_percent(interval=5.0)
        waited = time.perf_counter() - t0
        if (not others and busy < busy_limit) or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "cpu_busy_percent": busy, "other_test_processes": len(others),
                    "quiet": not others and busy < busy_limit}
        time.sleep(10)


# ---------------------------------------------------------------- core: (a) (b) (c) side by side


class Paths3:
    """The three paths, loaded (cold, then warm) and ready: `ask(path, seed)` / `follow(path)`."""

    def __init__(self, model: Path, work: Path, logf: Any, cfg: argparse.Namespace) -> None:
        self.model, self.work, self.logf, self.cfg = model, work, logf, cfg
        self.daemon: Daemon | None = None
        self.workers: dict[str, Worker] = {}
        self.loads: dict[str, dict[str, float]] = {}

    def _start(self, path: str, cache: Path) -> tuple[float, float | None]:
        """Start one path with compile cache `cache`; return (spawn-to-ready s, in-process load s)."""
        if path == "daemon":
            self.daemon = Daemon(str(self.model), self.work / f"daemon-{cache.name}", self.logf)
            secs = self.daemon.start()
            self.workers[path] = Worker("client", self.logf, connection=str(self.daemon.connection))
            return secs, None
        w = Worker(path, self.logf, model=str(self.model), cache=str(cache))
        self.workers[path] = w
        return w.spawn_to_ready_s, w.ready["load_s"]

    def _stop(self, path: str) -> None:
        w = self.workers.pop(path, None)
        if w:
            w.stop()
        if path == "daemon" and self.daemon:
            self.daemon.stop()
            self.daemon = None

    def load_all(self) -> None:
        """Cold (empty compile cache) then warm (same cache again), one path at a time, keep the warm one."""
        for path in PATHS:
            cache = self.work / f"cache-{path}"
            cold = self._start(path, cache)
            self._stop(path)
            if path == "daemon":  # the daemon's cache lives in its own XDG tree: reuse that tree
                pass
            warm = self._start(path, cache)
            self.loads[path] = {"cold_s": cold[0], "warm_s": warm[0], "cold_model_s": cold[1],
                                "warm_model_s": warm[1]}
            log(f"{path}: load cold {cold[0]:.1f} s, warm {warm[0]:.1f} s")

    def _daemon_cpu(self) -> float:
        return cpu_seconds(self.daemon.pid) if self.daemon else 0.0

    def request(self, path: str, op: str, **req: Any) -> dict[str, Any]:
        import psutil

        d0 = self._daemon_cpu() if path == "daemon" else 0.0
        sys0, t0 = psutil.cpu_times(), time.perf_counter()
        out = self.workers[path].call(op=op, **req)
        sys1, wall = psutil.cpu_times(), time.perf_counter() - t0
        if path == "daemon":
            out["client_cpu_s"] = out["cpu_s"]
            out["daemon_cpu_s"] = round(self._daemon_cpu() - d0, 4)
            out["cpu_s"] = round(out["client_cpu_s"] + out["daemon_cpu_s"], 4)
        out["cpu_s_per_token"] = round(out["cpu_s"] / out["tokens"], 5) if out["tokens"] else None
        # Everyone else's CPU during the request: the machine's busy CPU time minus this path's.
        busy = sum(getattr(sys1, f) - getattr(sys0, f) for f in ("user", "nice", "system", "irq", "softirq")
                   if hasattr(sys0, f))
        foreign = max(0.0, busy - out["cpu_s"])
        out["foreign_cpu_s"] = round(foreign, 3)
        out["foreign_cpu_share"] = round(foreign / (wall * (os.cpu_count() or 1)), 4) if wall > 0 else None
        return out

    def peak_rss(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for path, w in self.workers.items():
            out[path] = w.call(op="stats")["peak_rss"]
        if self.daemon:
            out["daemon_client"] = out.pop("daemon", None)
            out["daemon"] = peak_rss(self.daemon.pid)
        return out

    def close(self) -> None:
        for path in list(self.workers):
            self._stop(path)
        if self.daemon:
            self.daemon.stop()


def run_core(p3: Paths3, cfg: argparse.Namespace) -> dict[str, Any]:
    tokens, size = cfg.tokens, cfg.size
    seed = iter(range(1000, 100000))
    ask = {"question": QUESTION, "size": list(size), "max_new_tokens": tokens, "min_new_tokens": tokens}
    follow = {"question": FOLLOW_UP, "max_new_tokens": cfg.follow_tokens, "min_new_tokens": cfg.follow_tokens}
    # Warm-up: one short request per path (small image, few tokens) so first-use costs (allocations,
    # lazy compilation, page faults on the weights) are paid outside the rounds without a full request's time.
    warm = {**ask, "size": list(cfg.warmup_size), "max_new_tokens": 8, "min_new_tokens": 8}
    warmup: dict[str, Any] = {}
    for path in PATHS:
        warmup[path] = p3.request(path, "ask", seed=next(seed), **warm)
        log(f"warm-up {path}: ttft {warmup[path]['ttft_s']:.2f} s, {warmup[path]['tokens']} tokens")
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
    follows: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
    quiet: list[dict[str, Any]] = []
    for r in range(cfg.rounds):
        for path in PATHS:  # interleaved: A B C, A B C, ...
            if cfg.wait_quiet:  # before every measured request: others' bursts land between, not inside
                quiet.append(wait_quiet(cfg.wait_quiet))
                if quiet[-1]["waited_s"] > 6 or not quiet[-1]["quiet"]:
                    log(f"round {r} {path}: {quiet[-1]}")
            first = p3.request(path, "ask", seed=next(seed), **ask)
            first["round"] = r
            runs[path].append(first)
            log(f"round {r} {path}: ttft {first['ttft_s']:.2f} s, {first['decode_tps'] or 0:.2f} tok/s, "
                f"{first['tokens']} tokens, cpu/token {first['cpu_s_per_token']}")
            if r < cfg.follow_rounds:
                again = p3.request(path, "follow", **follow)
                again["round"] = r
                follows[path].append(again)
                log(f"round {r} {path}: follow-up ttft {again['ttft_s']:.2f} s")
    rss = p3.peak_rss()
    per_path: dict[str, Any] = {}
    for path in PATHS:
        per_path[path] = {"label": LABELS[path], "peak_rss_bytes": rss.get(path), "load": p3.loads.get(path),
                          "runs": runs[path], "follow_runs": follows[path], "warmup": warmup[path]}
        if path == "daemon":
            per_path[path]["client_peak_rss_bytes"] = rss.get("daemon_client")
    return summarize_core({"paths": per_path, "tokens_forced": tokens, "follow_tokens": cfg.follow_tokens,
            "follow_rounds": min(cfg.follow_rounds, cfg.rounds), "warmup_size": list(cfg.warmup_size),
            "quiet_checks": quiet,
            "image_size": list(size), "rounds": cfg.rounds, "question": QUESTION, "follow_up": FOLLOW_UP})


def summarize_core(core: dict[str, Any]) -> dict[str, Any]:
    """(Re)compute medians, spreads and ratios from the per-request records (also after --merge)."""
    paths = core["paths"]
    for p in paths.values():
        rs = p["runs"]
        for key in ("ttft_s", "decode_tps", "e2e_s", "cpu_s_per_token", "tokens", "prompt_tokens",
                    "foreign_cpu_share"):
            p[key] = summary([x.get(key) for x in rs])
        p["follow_ttft_s"] = summary([x["ttft_s"] for x in p["follow_runs"]])
    core["rounds"] = len(paths["genai"]["runs"])
    med = {p: (paths[p]["decode_tps"] or {}).get("median") for p in PATHS}
    e2e = {p: (paths[p]["e2e_s"] or {}).get("median") for p in PATHS}
    ratios = {}
    for other, tag in (("genai", "b"), ("optimum", "c")):
        if med["daemon"] and med[other]:
            ratios[f"a_over_{tag}_decode"] = round(med["daemon"] / med[other], 3)
        if e2e["daemon"] and e2e[other]:
            ratios[f"a_over_{tag}_e2e"] = round(e2e["daemon"] / e2e[other], 3)
    core["ratios"] = ratios
    return core


def merge_core(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Rounds of a later run added to an earlier one's (same model and workload): more samples, one table."""
    for key in ("tokens_forced", "follow_tokens", "image_size", "question"):
        if old.get(key) != new.get(key):
            raise BenchError(f"--merge: the core workloads differ in {key} ({old.get(key)} vs {new.get(key)})")
    runs_before = len(old["paths"]["genai"]["runs"])
    for path, p in new["paths"].items():
        o = old["paths"][path]
        for r in p["runs"] + p["follow_runs"]:
            r["round"] = r.get("round", 0) + runs_before
        o["runs"] = o["runs"] + p["runs"]
        o["follow_runs"] = o["follow_runs"] + p["follow_runs"]
        o["load_repeat"] = p["load"]
        for key in ("peak_rss_bytes", "client_peak_rss_bytes"):
            if key in p:
                o[key] = max(o.get(key) or 0, p[key] or 0) or None
    old["quiet_checks"] = (old.get("quiet_checks") or []) + (new.get("quiet_checks") or [])
    old["follow_rounds"] = old.get("follow_rounds", 0) + new.get("follow_rounds", 0)
    old["merged_runs"] = old.get("merged_runs", 1) + 1
    return summarize_core(old)


def run_idle(daemon: Daemon, seconds: float) -> dict[str, Any]:
    """CPU seconds of the loaded, idle daemon over `seconds` (nothing else talks to it)."""
    time.sleep(2.0)  # let the last request's teardown finish
    c0, t0 = cpu_seconds(daemon.pid), time.perf_counter()
    time.sleep(seconds)
    used, wall = cpu_seconds(daemon.pid) - c0, time.perf_counter() - t0
    import psutil

    threads = psutil.Process(daemon.pid).num_threads()
    return {"seconds": round(wall, 2), "cpu_s": round(used, 4), "cpu_percent": round(100 * used / wall, 4),
            "threads": threads}


def run_concurrency(daemon: Daemon, counts: list[int], tokens: int, size: tuple[int, int],
                    seed0: int = 50000, batching: bool = False) -> dict[str, Any]:
    """N clients (threads, one ipc Client each) ask at once, each with a fresh image; aggregate tokens/s."""
    from qwen_tray_client.client import Client

    out: dict[str, Any] = {"image_size": list(size), "max_new_tokens": tokens, "batching": batching}
    seed = seed0
    for n in counts:
        blobs = []
        for _ in range(n):
            blobs.append(png_bytes(noise_image(seed, size)))
            seed += 1
        results: list[dict[str, Any]] = [{} for _ in range(n)]
        barrier = threading.Barrier(n)

        def one(i: int, results: list[dict[str, Any]] = results, blobs: list[bytes] = blobs,
                barrier: threading.Barrier = barrier) -> None:
            with Client(daemon.connection, timeout=600.0) as client:
                barrier.wait()
                t0 = time.perf_counter()
                first = None
                answer = client.ask(blobs[i], QUESTION, max_new_tokens=tokens)
                for chunk in answer:
                    if chunk and first is None:
                        first = time.perf_counter()
                end = time.perf_counter()
                usage = (answer.result or {}).get("usage", {})
                results[i] = {"start": t0, "end": end, "ttft_s": round((first or end) - t0, 3),
                              "e2e_s": round(end - t0, 3), "tokens": usage.get("completion_tokens", 0)}

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if any(not r for r in results):
            raise BenchError(f"a client of the {n}-client run failed; see the log")
        wall = max(r["end"] for r in results) - min(r["start"] for r in results)
        total = sum(r["tokens"] for r in results)
        out[str(n)] = {"clients": n, "wall_s": round(wall, 3), "tokens": total,
                       "aggregate_tps": round(total / wall, 3),
                       "ttft_s": summary([r["ttft_s"] for r in results]),
                       "e2e_s": summary([r["e2e_s"] for r in results])}
        log(f"concurrency {n}: {total} tokens in {wall:.1f} s -> {total / wall:.2f} tok/s aggregate")
    return out


# ---------------------------------------------------------------- speed where users feel it (issue 13)


def _timed(answer: Any) -> dict[str, Any]:
    """Drain one streamed answer: seconds to the first text and to the end (from when it was accepted)."""
    t0 = time.perf_counter()
    first = None
    chunks: list[str] = []
    for chunk in answer:
        if chunk and first is None:
            first = time.perf_counter()
        chunks.append(chunk)
    end = time.perf_counter()
    usage = (answer.result or {}).get("usage", {})
    return {"ttft_s": round((first or end) - t0, 3), "e2e_s": round(end - t0, 3), "text": "".join(chunks),
            "tokens": usage.get("completion_tokens", 0), "end": end, "first": first or end}


def run_follow_up(daemon: Daemon, rounds: int, tokens: int, size: tuple[int, int], seed0: int) -> dict[str, Any]:
    """A first question about a fresh image, then a follow-up in the same conversation (image sent again)."""
    from qwen_tray_client.client import Client

    runs = []
    with Client(daemon.connection, timeout=1800.0) as client:
        for r in range(rounds):
            blob = png_bytes(noise_image(seed0 + r, size))
            parts = [{"type": "image", "blob": 0}, {"type": "text", "text": QUESTION}]
            first_msgs = [{"role": "user", "content": parts}]
            t0 = time.perf_counter()
            first = _timed(client.generate(first_msgs, [blob], max_new_tokens=tokens))
            first["ttft_s"] = round(first["first"] - t0, 3)
            msgs = [*first_msgs, {"role": "assistant", "content": first["text"]},
                    {"role": "user", "content": FOLLOW_UP}]
            t0 = time.perf_counter()
            follow = _timed(client.generate(msgs, [blob], max_new_tokens=8))
            follow["ttft_s"] = round(follow["first"] - t0, 3)
            runs.append({"first_ttft_s": first["ttft_s"], "follow_ttft_s": follow["ttft_s"],
                         "ratio": round(follow["ttft_s"] / first["ttft_s"], 3) if first["ttft_s"] else None})
            log(f"follow-up: first {first['ttft_s']:.2f} s, follow-up {follow['ttft_s']:.2f} s")
    return {"runs": runs, "first_ttft_s": summary([r["first_ttft_s"] for r in runs]),
            "follow_ttft_s": summary([r["follow_ttft_s"] for r in runs]),
            "ratio": summary([r["ratio"] for r in runs])}


def run_interactive(daemon: Daemon, rounds: int, background_tokens: int, size: tuple[int, int],
                    seed0: int) -> dict[str, Any]:
    """A popup-priority question on an idle daemon, then the same kind while a background answer streams."""
    from qwen_tray_client.client import Client, RequestRejected

    def ask(client: Any, seed: int) -> dict[str, Any]:
        blob = png_bytes(noise_image(seed, size))
        t0 = time.perf_counter()
        out = _timed(client.ask(blob, QUESTION, max_new_tokens=8, priority="interactive"))
        out["ttft_s"] = round(out["first"] - t0, 3)
        return out

    idle, busy, background_ended_first = [], [], 0
    with Client(daemon.connection, timeout=1800.0) as fg, Client(daemon.connection, timeout=1800.0) as bg:
        for r in range(rounds):
            idle.append(ask(fg, seed0 + 2 * r)["ttft_s"])
            answer = bg.ask(png_bytes(noise_image(seed0 + 1000 + r, size)), QUESTION,
                            max_new_tokens=background_tokens)
            it = iter(answer)
            next(c for c in it if c)  # the background answer is streaming
            asked = ask(fg, seed0 + 2 * r + 1)
            busy.append(asked["ttft_s"])
            with contextlib.suppress(RequestRejected):  # it had ended already
                answer.cancel()
            for _ in it:
                pass
            # cancelled = it was still streaming when the interactive answer had ended
            background_ended_first += int((answer.result or {}).get("finish_reason") != "cancelled")
            log(f"interactive: idle {idle[-1]:.2f} s, during background {busy[-1]:.2f} s")
    return {"idle_ttft_s": summary(idle), "busy_ttft_s": summary(busy),
            "ratio": summary([b / i for b, i in zip(busy, idle, strict=True) if i]),
            "background_tokens": background_tokens, "background_ended_first": background_ended_first}


def _warm_up(daemon: Daemon, size: tuple[int, int], tokens: int) -> None:
    """One answer and then two at once before anything is timed: first inference and the batch's shapes."""
    from qwen_tray_client.client import Client

    with Client(daemon.connection, timeout=1800.0) as a, Client(daemon.connection, timeout=1800.0) as b:
        a.ask(png_bytes(noise_image(1, size)), QUESTION, max_new_tokens=tokens).wait()
        answers = [c.ask(png_bytes(noise_image(2 + i, size)), QUESTION, max_new_tokens=tokens)
                   for i, c in enumerate((a, b))]
        for answer in answers:
            answer.wait()


def run_speed(model: Path, work: Path, logf: Any, cfg: argparse.Namespace) -> dict[str, Any]:
    """Issue 13's figures with the batching on and off: concurrency, follow-up ratio, interactive during background."""
    out: dict[str, Any] = {"image_size": list(cfg.concurrency_size), "max_new_tokens": cfg.concurrency_tokens,
                           "follow_up_image_size": list(cfg.size), "max_batch": 8, "modes": {}}
    for mode in cfg.speed_modes:
        extra = (f"\n[engine]\nbatching = {'true' if mode == 'on' else 'false'}\npreempt = true\nmax_batch = 8\n"
                 f"reuse_images = {'true' if cfg.speed_reuse else 'false'}\n")
        daemon = Daemon(str(model), work / f"speed-{mode}", logf, extra_config=extra)
        daemon.start()
        try:
            _warm_up(daemon, cfg.concurrency_size, cfg.concurrency_tokens)
            before, t0 = machine.load_avg(), time.monotonic()
            out["modes"][mode] = {
                "concurrency": run_concurrency(daemon, cfg.speed_counts, cfg.concurrency_tokens,
                                               cfg.concurrency_size, seed0=60000, batching=mode == "on"),
                "follow_up": run_follow_up(daemon, cfg.follow_rounds, cfg.concurrency_tokens, cfg.size,
                                           seed0=70000),
                "interactive": run_interactive(daemon, cfg.follow_rounds, 4 * cfg.concurrency_tokens,
                                               cfg.concurrency_size, seed0=80000),
                "reuse_images": cfg.speed_reuse,
                "load": {"load_avg_before": before, "load_avg_after": machine.load_avg(),
                         "other_test_processes": len(busy_others()), "seconds": round(time.monotonic() - t0, 1),
                         "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            }
        finally:
            daemon.stop()
    return out


# ---------------------------------------------------------------- IPC overhead (tiny model)


def run_ipc(work: Path, logf: Any, repeats: int) -> dict[str, Any]:
    """Round trip of a 1920x1080 frame as PNG and as raw BGRA through the daemon, against an in-process call.

    On the tiny model with max_new_tokens=1, so the engine's share is a few milliseconds and
    the difference is what the transport (encode, send, decode, resize) costs.
    """
    from qwen_tray.engine.base import GenerationOptions, Message
    from qwen_tray.engine.image_budget import fit_image
    from qwen_tray.engine.loader import load_engine
    from qwen_tray.engine.placement import PlacementSettings
    from qwen_tray_client.client import Client, RawImage

    frame = screen_frame()
    t0 = time.perf_counter()
    png = png_bytes(frame)
    png_encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bgra = frame.convert("RGBA").tobytes("raw", "BGRA")
    bgra_s = time.perf_counter() - t0
    daemon = Daemon(str(TINY), work / "daemon-ipc", logf)
    daemon.start()
    try:
        with Client(daemon.connection, timeout=60.0) as client:
            def rt(image: Any) -> float:
                t = time.perf_counter()
                client.ask(image, QUESTION, max_new_tokens=1).wait()
                return time.perf_counter() - t

            ping = [client.ping() for _ in range(repeats)]
            rt(png)
            rt(RawImage(bgra, 1920, 1080, "BGRA"))  # warm both decoders and the engine
            png_rt, raw_rt = [], []
            for _ in range(repeats):
                png_rt.append(rt(png))
                raw_rt.append(rt(RawImage(bgra, 1920, 1080, "BGRA")))
    finally:
        daemon.stop()
    engine = load_engine(TINY, "genai", "CPU", PlacementSettings())
    cancel = threading.Event()
    opts = GenerationOptions(max_new_tokens=1)

    def inproc() -> float:
        t = time.perf_counter()
        img = fit_image(frame, 1280)  # what the daemon does to an image on CPU (default budget)
        engine.generate([Message("user", QUESTION, [img])], opts, lambda _c: None, cancel)
        return time.perf_counter() - t

    inproc()
    in_rt = [inproc() for _ in range(repeats)]
    engine.close()
    med = {k: statistics.median(v) for k, v in (("png", png_rt), ("bgra", raw_rt), ("inproc", in_rt))}
    return {
        "model": "tiny fixture (max_new_tokens=1: engine time is a few ms)",
        "frame": [1920, 1080],
        "png_bytes": len(png),
        "bgra_bytes": len(bgra),
        "png_encode_s": round(png_encode_s, 4),
        "bgra_convert_s": round(bgra_s, 4),
        "ping_s": summary(ping),
        "png_round_trip_s": summary(png_rt),
        "bgra_round_trip_s": summary(raw_rt),
        "inprocess_s": summary(in_rt),
        "png_overhead_s": round(med["png"] - med["inproc"], 4),
        "bgra_overhead_s": round(med["bgra"] - med["inproc"], 4),
        "repeats": repeats,
    }


# ---------------------------------------------------------------- desktop (Xvfb)


def run_desktop(work: Path, logf: Any, repeats: int) -> dict[str, Any]:
    """Under Xvfb 1920x1080: monitor capture time, and hotkey press -> popup window mapped."""
    sys.path.insert(0, str(ROOT / "tests"))
    from desktop_probe import capture_times, hotkey_to_popup
    from xvfb import XvfbDisplay  # the tests' harness: a private Xvfb, xdotool helpers

    with XvfbDisplay(1920, 1080) as xv:
        cap = capture_times(xv, repeats)
        daemon = Daemon(str(TINY), work / "daemon-desktop", logf, extra_env={"DISPLAY": xv.display},
                        headless=False, extra_config="\n[ui]\nshow_tray = false\n")
        lat = hotkey_to_popup(xv, daemon, repeats)
    return {"screen": [1920, 1080], "capture_s": summary(cap), "hotkey_to_popup_s": summary(lat),
            "repeats": repeats, "model": "tiny fixture (the popup does not wait for the model)"}


# ---------------------------------------------------------------- the limit


def run_bandwidth_from(bw: dict[str, Any], core: dict[str, Any], model: Path | None = None) -> dict[str, Any]:
    """The shares of the ceiling, for a bandwidth measured apart from the core section (--merge)."""
    prompt = (core["paths"]["genai"].get("prompt_tokens") or {}).get("median")
    if model is not None and prompt and bw.get("weights", {}).get("per_token"):
        conf = json.loads((model / "config.json").read_text())
        bw["mean_context"] = int(prompt) + core["tokens_forced"] // 2
        bw["kv_bytes_per_token_f16"] = kv = machine.kv_bytes_per_token(conf, bw["mean_context"], 2.0)
        bw["ceiling_tps_with_kv"] = round(bw["read_gbps"] * 1e9 / (bw["weights"]["per_token"] + kv), 3)
    if bw.get("ceiling_tps"):
        bw["share"] = {p: round(((core["paths"][p]["decode_tps"] or {}).get("median") or 0) / bw["ceiling_tps"], 3)
                       for p in PATHS}
    return bw


def run_bandwidth(model: Path, cfg: argparse.Namespace, core: dict[str, Any] | None) -> dict[str, Any]:
    bw = machine.read_bandwidth(total_mb=cfg.bandwidth_mb)
    wb = machine.weight_bytes(model)
    conf = json.loads((model / "config.json").read_text())
    prompt = 650
    if core:
        pt = (core["paths"]["genai"].get("prompt_tokens") or {}).get("median")
        prompt = int(pt or prompt)
    ctx = prompt + cfg.tokens // 2  # mean context over the forced output
    kv = machine.kv_bytes_per_token(conf, ctx, 2.0)
    ceiling = bw["read_gbps"] * 1e9 / wb["per_token"] if wb["per_token"] else None
    ceiling_kv = bw["read_gbps"] * 1e9 / (wb["per_token"] + kv) if wb["per_token"] else None
    out = {**bw, "weights": wb, "kv_bytes_per_token_f16": kv, "mean_context": ctx,
           "ceiling_tps": round(ceiling, 3) if ceiling else None,
           "ceiling_tps_with_kv": round(ceiling_kv, 3) if ceiling_kv else None}
    if core and ceiling:
        out["share"] = {p: round(((core["paths"][p]["decode_tps"] or {}).get("median") or 0) / ceiling, 3)
                        for p in PATHS}
    return out


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny model, 1 round, short outputs (what CI runs)")
    ap.add_argument("--shape", choices=("4b", "2b"), default="4b", help="stand-in to build/use (default 4b)")
    ap.add_argument("--model", type=Path, help="an OpenVINO IR folder to use instead of the stand-in")
    ap.add_argument("--rounds", type=int, help="interleaved rounds after the warm-up (default 3; smoke 1)")
    ap.add_argument("--tokens", type=int, help="forced output tokens (default 128; smoke 8)")
    ap.add_argument("--follow-tokens", type=int, default=8, help="tokens for the follow-up question (its TTFT counts)")
    ap.add_argument("--follow-rounds", type=int, default=1, help="rounds that also ask a follow-up (default 1)")
    ap.add_argument("--idle-seconds", type=float, help="idle window (default 60; smoke 3)")
    ap.add_argument("--concurrency", default=None, help="client counts, e.g. 1,2,4 (smoke 1,2)")
    ap.add_argument("--speed-counts", default=None,
                    help="client counts of the speed section (default 1,2,4,8; smoke 1,2)")
    ap.add_argument("--speed-modes", default="on,off",
                    help="batching settings of the speed section, in this order (default on,off)")
    ap.add_argument("--speed-reuse", action="store_true",
                    help="speed section: [engine] reuse_images = true (follow-ups through genai's ChatHistory)")
    ap.add_argument("--concurrency-tokens", type=int, help="tokens per concurrent request (default 32; smoke 8)")
    ap.add_argument("--concurrency-size", default=None, help="image WxH per concurrent request (default 256x256)")
    ap.add_argument("--repeats", type=int, help="repeats for IPC and desktop figures (default 10; smoke 3)")
    ap.add_argument("--bandwidth-mb", type=int, help="bandwidth buffer MiB (default 2048; smoke 64)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"subset of {','.join(SECTIONS)}")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "docs", help="where benchmarks.{json,md,png} go")
    ap.add_argument("--work-dir", type=Path, help="scratch folder (default: a temporary one)")
    ap.add_argument("--no-report", action="store_true", help="write the JSON only")
    ap.add_argument("--merge", action="store_true",
                    help="keep the sections of an existing benchmarks.json in --out-dir that this run does not redo")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each round and section wait up to S seconds for no other test run and idle CPUs")
    a = ap.parse_args(argv)
    smoke = a.smoke
    a.rounds = a.rounds or (1 if smoke else 3)
    a.tokens = a.tokens or (8 if smoke else 128)
    a.follow_tokens = min(a.follow_tokens, a.tokens)
    a.idle_seconds = a.idle_seconds if a.idle_seconds is not None else (2.0 if smoke else 60.0)
    a.concurrency = [int(x) for x in (a.concurrency or ("1,2" if smoke else "1,2,4")).split(",")]
    a.speed_counts = [int(x) for x in (a.speed_counts or ("1,2" if smoke else "1,2,4,8")).split(",")]
    a.speed_modes = [m for m in a.speed_modes.split(",") if m in ("on", "off")] or ["on", "off"]
    a.concurrency_tokens = a.concurrency_tokens or (8 if smoke else 32)
    a.concurrency_size = tuple(int(v) for v in (a.concurrency_size or "256x256").lower().split("x"))
    a.warmup_size = (64, 64)
    a.repeats = a.repeats or (3 if smoke else 10)
    a.bandwidth_mb = a.bandwidth_mb or (64 if smoke else 2048)
    a.size = (256, 256) if smoke else DEFAULT_SIZE
    a.sections = [s for s in a.sections.split(",") if s]
    unknown = set(a.sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return a


def resolve_model(cfg: argparse.Namespace) -> tuple[Path, str]:
    if cfg.model:
        return cfg.model.resolve(), cfg.model.name
    if cfg.smoke:
        return TINY, "tiny fixture (random weights, 0.5 M parameters)"
    from make_standin import ensure_standin

    name = f"Qwen3-VL {cfg.shape.upper()} stand-in (published shape, random weights)"
    return ensure_standin(cfg.shape, log=log), name


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    work = cfg.work_dir or Path(tempfile.mkdtemp(prefix="qwen-tray-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    model, model_name = resolve_model(cfg)
    log(f"model {model}; work dir {work}")
    others = busy_others()
    if others:
        log(f"warning: {len(others)} other pytest process(es) running; figures will be noisy")
    result: dict[str, Any] = {
        "schema": 1,
        "mode": "smoke" if cfg.smoke else "full",
        "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine.machine_info(),
        "other_test_processes_at_start": len(others),
        "model": {"name": model_name, "dir": str(model),
                  "ir_bytes": sum(p.stat().st_size for p in model.glob("*.bin"))},
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()
                     if k in ("rounds", "tokens", "follow_tokens", "follow_rounds", "idle_seconds", "concurrency",
                              "concurrency_tokens", "concurrency_size", "speed_counts",
                              "warmup_size", "repeats", "bandwidth_mb",
                              "size", "sections")},
        "sections": {},
    }
    logf = (work / "bench.log").open("a", encoding="utf-8")

    def section(name: str, fn: Callable[[], Any]) -> None:
        if name not in cfg.sections:
            return
        quiet = wait_quiet(cfg.wait_quiet) if cfg.wait_quiet else None
        load0 = machine.load_avg()
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        t0 = time.perf_counter()
        log(f"section {name} ...")
        data = fn()
        result["sections"][name] = {"data": data, "seconds": round(time.perf_counter() - t0, 1),
                                    "load_avg_before": load0, "load_avg_after": machine.load_avg(),
                                    "other_test_processes": len(busy_others()), "quiet_wait": quiet,
                                    "measured": started}

    needs_paths = any(s in cfg.sections for s in ("core", "idle", "concurrency"))
    p3 = Paths3(model, work, logf, cfg) if needs_paths else None
    try:
        if p3:
            if "core" in cfg.sections:
                p3.load_all()
            else:  # only the daemon is needed
                p3.daemon = Daemon(str(model), work / "daemon-only", logf)
                p3.daemon.start()
            section("core", lambda: run_core(p3, cfg))
            for path in ("genai", "optimum"):  # free their memory before the daemon-only sections
                p3._stop(path)
            assert p3.daemon is not None
            section("idle", lambda: run_idle(p3.daemon, cfg.idle_seconds))
            section("concurrency", lambda: run_concurrency(p3.daemon, cfg.concurrency, cfg.concurrency_tokens,
                                                           cfg.concurrency_size))
    finally:
        if p3:
            p3.close()
    section("speed", lambda: run_speed(model, work, logf, cfg))
    section("ipc", lambda: run_ipc(work, logf, cfg.repeats))
    section("desktop", lambda: run_desktop(work, logf, cfg.repeats))
    core = result["sections"].get("core", {}).get("data")
    section("bandwidth", lambda: run_bandwidth(model, cfg, core))
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out_json = cfg.out_dir / "benchmarks.json"
    if cfg.merge and out_json.is_file():
        old = json.loads(out_json.read_text(encoding="utf-8"))
        if old.get("model", {}).get("dir") != result["model"]["dir"]:
            raise BenchError(f"--merge: {out_json} was measured on another model ({old.get('model', {}).get('dir')})")
        this_run = list(result["sections"])
        merged = {**old.get("sections", {}), **result["sections"]}
        if "core" in result["sections"] and "core" in old.get("sections", {}):
            o, n = old["sections"]["core"], result["sections"]["core"]
            before = o.get("earlier") or []
            before = before if isinstance(before, list) else [before]
            merged["core"] = {**n, "data": merge_core(o["data"], n["data"]),
                              "earlier": [*before, {k: v for k, v in o.items() if k not in ("data", "earlier")}]}
        result["runs"] = [*old.get("runs", [{k: old.get(k) for k in ("command", "started", "finished")}]),
                          {k: result[k] for k in ("command", "started", "finished")}]
        result["sections"] = merged
        if "peer" in old:  # written by hand from a run outside this script; kept across merges
            result["peer"] = old["peer"]
        result["started"] = min(old.get("started", result["started"]), result["started"])
        if old.get("machine") and old["machine"] != result["machine"]:  # the header keeps the first machine;
            for name in this_run:  # sections of this run name theirs
                merged[name]["machine"] = result["machine"]
            result["machine"] = old["machine"]
            result["other_test_processes_at_start"] = old.get("other_test_processes_at_start", 0)
        if "bandwidth" in merged and "core" in merged:  # shares against the (merged) core figures, same host only
            if merged["bandwidth"].get("machine") == merged["core"].get("machine"):
                merged["bandwidth"]["data"] = run_bandwidth_from(merged["bandwidth"]["data"], merged["core"]["data"],
                                                                 model)
            else:
                merged["bandwidth"]["data"].pop("share", None)
    out_json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {out_json}")
    if not cfg.no_report:
        from report import write_report

        md, png = write_report(result, cfg.out_dir)
        log(f"wrote {md} and {png}")
    logf.close()
    if cfg.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
