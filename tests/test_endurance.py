"""Endurance, bounded for CI: 600 streamed answers of at least 300 tokens each, over 4 ZeroMQ clients at once
plus the popup, through the real daemon (`Service` with the default config: continuous batching, popup
preemption, follow-up image reuse; scheduler, ZeroMQ server, the bundled tiny model loaded by the real loader)
in this process. Every answer must arrive whole, and the process's descriptors, threads and memory must come
back to where they were after a warm-up.

The warm-up is 400 answers because that is where this workload's memory levels off: batched steps come in
many shapes (how many requests, how many tokens, how many KV blocks), and the CPU plugin caches what it
builds per shape (bounded: `CPU_RUNTIME_CACHE_CAPACITY` entries). Measured with `bench/rss_growth.py
--popup-turns 1` (docs/decisions.md): RSS rises ~20 % over the first 400 answers, then < 2 % over the next 400.

Lengths come from the protocol's `min_new_tokens`, not from the model never stopping early (a trained demo
model ends after a sentence). The long version with cancellations, abandoned and killed clients is
`bench/endurance.py` (not run in CI).
"""

from __future__ import annotations

import os
import threading
import time
import tkinter as tk
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from uitools import pump
from xvfb import XvfbDisplay

from qwen_tray.config import Config
from qwen_tray.engine.base import GenerationOptions, GenerationResult
from qwen_tray.jobs import Job
from qwen_tray.paths import default_paths
from qwen_tray.service import Service
from qwen_tray.ui.popup import AnswerPopup, PopupSettings
from qwen_tray_client.client import Client

CLIENTS = 4
MIN_TOKENS = 300
WARMUP = (90, 40)  # answers per ZeroMQ client, popup answers: 400, until the shape caches have levelled off
MEASURED = (45, 20)  # 4 x 45 + 20 = 200 answers measured; 600 in all


def proc_figures() -> dict[str, int]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"fds": len(os.listdir("/proc/self/fd")), "threads": len(os.listdir("/proc/self/task")),
            "rss_kb": int(status["VmRSS"].split()[0])}


class TeeSubmitter:
    """The scheduler as the popup's submitter, with each job's sink teed to record chunks and the result."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.records: list[dict[str, Any]] = []

    def submit(self, job: Job) -> int:
        record: dict[str, Any] = {"chunks": [], "result": None, "error": None}
        self.records.append(record)
        inner = job.sink

        class Tee:
            def on_start(self) -> None:
                inner.on_start()

            def on_chunk(self, text: str) -> None:
                record["chunks"].append(text)
                inner.on_chunk(text)

            def on_done(self, result: GenerationResult, queue_ms: float, demo: bool) -> None:
                record["result"] = result
                inner.on_done(result, queue_ms, demo)

            def on_error(self, code: str, message: str, partial: str) -> None:
                record["error"] = code
                inner.on_error(code, message, partial)

        job.sink = Tee()
        return self.scheduler.submit(job)

    def cancel(self, job: Job) -> None:
        self.scheduler.cancel(job)


def client_answers(conn: Any, n: int, tag: str, failures: list[str], done: list[int]) -> None:
    try:
        with Client(conn, timeout=120) as client:
            for i in range(n):
                answer = client.ask(None, f"{tag} question {i}", max_new_tokens=MIN_TOKENS + i % 17,
                                    min_new_tokens=MIN_TOKENS)
                chunks = list(answer)
                r = answer.result
                if r["text"] != "".join(chunks) or not chunks:
                    failures.append(f"{tag}/{i}: done.text differs from its {len(chunks)} chunks joined")
                elif r["usage"]["completion_tokens"] < MIN_TOKENS:
                    failures.append(f"{tag}/{i}: {r['usage']['completion_tokens']} tokens")
                done.append(1)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        failures.append(f"{tag}: {type(exc).__name__}: {exc}")


def run_phase(root: tk.Tk, popup: AnswerPopup, tee: TeeSubmitter, conn: Any, per_client: int, popup_answers: int,
              failures: list[str], phase: str) -> int:
    done: list[int] = []
    workers = [threading.Thread(target=client_answers, args=(conn, per_client, f"{phase}c{n}", failures, done))
               for n in range(CLIENTS)]
    for w in workers:
        w.start()
    asked = 0
    deadline = time.monotonic() + 3.0 * (CLIENTS * per_client + popup_answers)  # a hang guard, not a timing
    while any(w.is_alive() for w in workers) or asked < popup_answers or popup.state not in ("done", "ready"):
        assert time.monotonic() < deadline, f"{phase}: not finished in time ({len(done)} client answers)"
        if popup.state in ("done", "ready") and asked < popup_answers:
            if asked:
                popup.clear()
            assert popup.ask(f"{phase} popup question {asked}")
            asked += 1
        assert popup.state != "error", popup.status.cget("text")
        root.update()
        time.sleep(0.005)
    for w in workers:
        w.join()
    return len(done) + asked


@pytest.mark.desktop
def test_600_long_answers_over_4_clients_and_the_popup_leave_nothing_behind(
        tk_root: tk.Tk, ui_display: XvfbDisplay) -> None:
    cfg = Config()
    cfg.server.queue_size = 64
    svc = Service(default_paths(), cfg)  # the real loader: the bundled tiny model on CPU
    svc.start()
    try:
        assert svc.demo
        pump(tk_root, lambda: svc.scheduler.status()["state"] == "ready", 60, "the model")
        assert getattr(svc.scheduler._engine, "batching", False), "the default config batches on CPU"
        tee = TeeSubmitter(svc.scheduler)
        settings = PopupSettings(options=GenerationOptions(max_new_tokens=MIN_TOKENS + 5, min_new_tokens=MIN_TOKENS))
        popup = AnswerPopup(tk_root, tee, Image.new("RGB", (64, 48), (20, 120, 220)), (10, 10, 64, 48),
                            (0, 0, 1280, 1024), settings)
        failures: list[str] = []

        total = run_phase(tk_root, popup, tee, svc.connection_file, *WARMUP, failures, "w")
        assert not failures, failures[:5]
        base = proc_figures()
        total += run_phase(tk_root, popup, tee, svc.connection_file, *MEASURED, failures, "m")
        assert not failures, failures[:5]
        after = proc_figures()

        assert total == CLIENTS * (WARMUP[0] + MEASURED[0]) + WARMUP[1] + MEASURED[1] == 600
        assert len(tee.records) == WARMUP[1] + MEASURED[1]
        for i, rec in enumerate(tee.records):
            r = rec["result"]
            assert rec["error"] is None and r is not None, (i, rec["error"])
            assert r.text == "".join(rec["chunks"]) and r.figures.completion_tokens >= MIN_TOKENS, i
        assert popup.state == "done" and popup._turns[-1].answer == tee.records[-1]["result"].text
        assert svc.scheduler.status()["queue_depth"] == 0
        assert after["fds"] <= base["fds"] + 3, (base, after)
        assert after["threads"] <= base["threads"] + 2, (base, after)
        assert after["rss_kb"] <= base["rss_kb"] * 1.05, (base, after)
        print(f"\nendurance: {total} answers; before {base}, after {after}")
        popup.close()
    finally:
        svc.stop()
