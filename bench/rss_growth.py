"""RSS over many answers, to tell a leak (grows with every request) from a plateau (caches that fill once).

    python bench/rss_growth.py --answers 800 --batching --preempt     # the endurance workload, longer
    python bench/rss_growth.py --answers 400                          # one at a time, for comparison

The workload is tests/test_endurance.py's: 4 ZeroMQ clients asking text questions of at least 300 tokens,
and an interactive "popup" conversation about one image (a first question and two follow-ups, again and
again) submitted to the scheduler at interactive priority, all through one in-process `Service` on the
tiny fixture model (CPU). Every `--every` answers the process's RSS is printed (and written as JSON with
`--json`): a plateau levels off, a leak keeps its slope. Not run in CI; it writes nothing under docs/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

MIN_TOKENS = 300


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--answers", type=int, default=800)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--batching", action="store_true")
    ap.add_argument("--preempt", action="store_true")
    ap.add_argument("--no-reuse", action="store_true", help="[engine] reuse_images = false")
    ap.add_argument("--kv-cache-gb", type=int, default=0)
    ap.add_argument("--no-popup", action="store_true")
    ap.add_argument("--popup-turns", type=int, default=3, help="questions per popup conversation (the test: 1)")
    ap.add_argument("--prop", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra CPU plugin property, e.g. CPU_RUNTIME_CACHE_CAPACITY=0")
    ap.add_argument("--trim", action="store_true", help="malloc_trim(0) before each sample (allocator slack out)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="qt-rss-")
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_CACHE_HOME", "cache"),
                     ("XDG_STATE_HOME", "state"), ("XDG_RUNTIME_DIR", "runtime")):
        os.environ[var] = os.path.join(tmp, sub)
        os.makedirs(os.environ[var], mode=0o700, exist_ok=True)
    os.environ["QWEN_TRAY_DEMO_MODEL"] = str(ROOT / "tests" / "fixtures" / "tiny-qwen3-vl-ov")

    from PIL import Image

    from qwen_tray.config import Config
    from qwen_tray.engine.base import GenerationOptions, GenerationResult, Message
    from qwen_tray.jobs import Job
    from qwen_tray.paths import default_paths
    from qwen_tray.service import Service
    from qwen_tray_client.client import Client

    if args.prop:
        from qwen_tray.engine import placement

        extra = {k: (int(v) if v.lstrip("-").isdigit() else v) for k, v in (p.split("=", 1) for p in args.prop)}
        plain = placement._cpu_props
        placement._cpu_props = lambda settings: {**plain(settings), **extra}
    if args.trim:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")

    cfg = Config()
    cfg.server.queue_size = 64
    cfg.http.enabled = False
    cfg.engine.batching = args.batching
    cfg.engine.preempt = args.preempt
    cfg.engine.reuse_images = not args.no_reuse
    cfg.engine.kv_cache_gb = args.kv_cache_gb
    svc = Service(default_paths(), cfg)
    svc.start()
    sched = svc.scheduler
    while sched.status()["state"] != "ready":
        time.sleep(0.1)

    done = [0]
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[str] = []
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()

    def count() -> None:
        with lock:
            done[0] += 1
            n = done[0]
        if n % args.every == 0:
            if args.trim:
                libc.malloc_trim(0)
            s = {"answers": n, "rss_mb": round(rss_kb() / 1024, 1), "s": round(time.monotonic() - t0, 1),
                 "threads": len(os.listdir("/proc/self/task"))}
            pipe = getattr(getattr(sched, "_engine", None), "_pipe", None)
            if pipe is not None and hasattr(pipe, "get_metrics"):  # the batching engine: genai's KV cache
                s["kv_cache_mb"] = round(pipe.get_metrics().cache_size_in_bytes / 2**20, 2)
            samples.append(s)
            print(json.dumps(s), flush=True)
        if n >= args.answers:
            stop.set()

    def client(tag: str) -> None:
        try:
            with Client(svc.connection_file, timeout=120) as c:
                i = 0
                while not stop.is_set():
                    answer = c.ask(None, f"{tag} question {i}", max_new_tokens=MIN_TOKENS + i % 17,
                                   min_new_tokens=MIN_TOKENS)
                    list(answer)
                    i += 1
                    count()
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{tag}: {exc}")
            stop.set()

    class Sink:
        def __init__(self) -> None:
            self.done = threading.Event()
            self.text = ""
            self.error: str | None = None

        def on_start(self) -> None:
            pass

        def on_chunk(self, text: str) -> None:
            pass

        def on_done(self, result: GenerationResult, queue_ms: float, demo: bool) -> None:
            self.text = result.text
            self.done.set()

        def on_error(self, code: str, message: str, partial: str) -> None:
            self.error = code
            self.done.set()

    def popup() -> None:
        shot = Image.new("RGB", (64, 48), (20, 120, 220))
        k = 0
        while not stop.is_set():
            history: list[Message] = []
            for q in range(args.popup_turns):
                msgs = [*history, Message("user", f"popup {k} question {q}", [shot] if q == 0 else [])]
                sink = Sink()
                sched.submit(Job(msgs, GenerationOptions(max_new_tokens=MIN_TOKENS + 5, min_new_tokens=MIN_TOKENS),
                                 sink, "interactive"))
                sink.done.wait()
                if sink.error:
                    failures.append(f"popup: {sink.error}")
                    stop.set()
                    return
                history = [*msgs, Message("assistant", sink.text)]
                count()
                time.sleep(0.3)
            k += 1

    threads = [threading.Thread(target=client, args=(f"c{n}",)) for n in range(4)]
    if not args.no_popup:
        threads.append(threading.Thread(target=popup))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    svc.stop()
    print(json.dumps({"failures": failures[:5], "config": vars(args) | {"json": str(args.json)}}), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"config": vars(args) | {"json": str(args.json)}, "samples": samples},
                                        indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
