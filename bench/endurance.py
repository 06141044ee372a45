"""Endurance benchmark (not CI): thousands of answers through one headless daemon, watching for leaks and stalls.

    python bench/endurance.py                    # 10,000 answers (about half an hour on 2 cores)
    python bench/endurance.py --answers 2000     # a shorter run
    python bench/endurance.py --smoke            # ~60 answers into a temp folder; never touches docs/
    python bench/endurance.py --render           # redraw plot and section from docs/endurance.json

What it does: starts `qwen-tray run --headless` on the tiny fixture model (CPU) in a private XDG tree, then runs
phases of 250 answers, each with 4 to 8 client threads (a new `qwen_tray_client.client.Client` per thread and phase, so
connections come and go). Lengths are mixed (70 % 8-64 tokens, 25 % 64-300, 5 % 300-800) and forced with
`min_new_tokens` = `max_new_tokens`, so every answer's length is known. Of the answers, about 4 % are cancelled
after their first chunk (`answer.cancel()`, read to `done` "cancelled"), 4 % abandoned mid-stream (the loop is
left: the client cancels and forgets it), and every phase one extra client process starts a long stream and is
killed with SIGKILL after its first token. Meanwhile a client in a process of its own pings every 100 ms
(round trip measured there, so the bench's own threads cannot delay it), and the daemon's
descriptors (/proc/PID/fd), threads (/proc/PID/task) and RSS are sampled every second.

Checks per answer: a completed one has `done.text` equal to its chunks joined and exactly the requested tokens;
a cancelled one ends `cancelled` with its text equal to its chunks. Anything else (a timeout, an error, a short
or differing text) counts as lost or truncated.

Writes `endurance.json` and `endurance.png` beside `--out` (default docs/) and the "Endurance" section of
benchmarks.md (between markers, so `bench/report.py` keeps it). Run it under the heavy lock on a shared machine:
    flock /tmp/qwen-heavy.lock python bench/endurance.py
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from machine import load_avg, machine_info  # noqa: E402
from procs import Daemon  # noqa: E402
from report import ENDURANCE_BEGIN as BEGIN  # noqa: E402
from report import ENDURANCE_END as END  # noqa: E402

from qwen_tray_client.client import Client, ClientError  # noqa: E402

TINY = ROOT / "tests" / "fixtures" / "tiny-qwen3-vl-ov"
PHASE = 250

KILLED_CLIENT = """
import json, sys, zmq
info = json.load(open(sys.argv[1]))
s = zmq.Context().socket(zmq.DEALER)
s.curve_serverkey = info["server_public_key"].encode()
s.curve_publickey = info["client_public_key"].encode()
s.curve_secretkey = info["client_secret_key"].encode()
s.connect(info["endpoint"])
s.send_json({"v": 1, "id": "doomed", "op": "generate", "messages": [{"role": "user", "content": "go on"}],
             "options": {"max_new_tokens": 3000, "min_new_tokens": 3000}})
while json.loads(s.recv())["event"] != "token":
    pass
print("streaming", flush=True)
import time
time.sleep(600)
"""


def proc_sample(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"fds": len(list(Path(f"/proc/{pid}/fd").iterdir())),
            "threads": len(list(Path(f"/proc/{pid}/task").iterdir())),
            "rss_mb": round(int(status["VmRSS"].split()[0]) / 1024.0, 1)}


def pick_length(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.70:
        return rng.randint(8, 64)
    if r < 0.95:
        return rng.randint(65, 300)
    return rng.randint(301, 800)


class Run:
    """Shared state of one benchmark run (lists appended from several threads; list.append is atomic)."""

    def __init__(self, daemon: Daemon, seed: int) -> None:
        self.daemon = daemon
        self.seed = seed
        self.t0 = time.monotonic()
        self.requests: list[dict[str, Any]] = []  # t, n, kind, tokens, total_s, ok
        self.pings: list[tuple[float, float]] = []  # t, rtt ms
        self.samples: list[dict[str, float]] = []  # t, answers, fds, threads, rss_mb
        self.problems: list[str] = []
        self.killed = 0
        self.stop = threading.Event()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 3)


def client_worker(run: Run, todo: list[int], lock: threading.Lock, worker: int) -> None:
    rng = random.Random(run.seed * 1000 + worker + len(run.requests))
    try:
        client = Client(run.daemon.connection, timeout=120.0)
    except ClientError as exc:
        run.problems.append(f"worker {worker}: cannot connect: {exc}")
        return
    with client:
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop()
            length = pick_length(rng)
            r = rng.random()
            kind = "cancel" if r < 0.04 else "abandon" if r < 0.08 else "complete"
            started = time.monotonic()
            rec: dict[str, Any] = {"t": run.now(), "n": n, "kind": kind, "tokens": length, "ok": False}
            try:
                answer = client.ask(None, f"endurance question {n}: tell me about item {n % 97}",
                                    max_new_tokens=length, min_new_tokens=length)
                chunks: list[str] = []
                for chunk in answer:
                    chunks.append(chunk)
                    if kind == "cancel" and len(chunks) == 1:
                        answer.cancel()
                    if kind == "abandon" and len(chunks) == 2:
                        break  # leaves the stream: the client cancels it and drops its replies
                res = answer.result
                if kind == "abandon":
                    rec["ok"] = res is None or res["text"] == "".join(chunks)
                elif res is None:
                    run.problems.append(f"answer {n}: no result")
                elif res["text"] != "".join(chunks):
                    run.problems.append(f"answer {n}: done.text differs from its {len(chunks)} chunks")
                elif kind == "complete" and (res["usage"]["completion_tokens"] != length
                                             or res["finish_reason"] != "length"):
                    run.problems.append(f"answer {n}: {res['usage']['completion_tokens']} of {length} tokens, "
                                        f"{res['finish_reason']}")
                else:
                    rec["ok"] = True
            except Exception as exc:  # noqa: BLE001 - counted as lost, the run goes on
                run.problems.append(f"answer {n} ({kind}): {type(exc).__name__}: {exc}")
            rec["total_s"] = round(time.monotonic() - started, 4)
            run.requests.append(rec)


PINGER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from qwen_tray_client.client import Client
with Client(sys.argv[1], timeout=10.0) as client:
    while sys.stdin.readline():
        try:
            print(round(client.ping() * 1000.0, 3), flush=True)
        except Exception as exc:
            print("error", exc, flush=True)
"""


def pinger(run: Run) -> None:
    """Pings from a process of its own, so the bench's client threads (one GIL) cannot delay the measurement."""
    child = subprocess.Popen([sys.executable, "-c", PINGER, str(run.daemon.connection), str(ROOT)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        while not run.stop.wait(0.1):
            child.stdin.write("\n")
            child.stdin.flush()
            line = child.stdout.readline().strip()
            if line.startswith("error") or not line:
                run.problems.append(f"ping failed: {line}")
            else:
                run.pings.append((run.now(), float(line)))
    finally:
        child.kill()
        child.wait()


def sampler(run: Run) -> None:
    while True:
        try:
            run.samples.append({"t": run.now(), "answers": len(run.requests), **proc_sample(run.daemon.pid)})
        except (OSError, ValueError) as exc:
            run.problems.append(f"sampling failed: {exc}")
        if run.stop.wait(1.0):
            return


def killed_client(run: Run) -> None:
    """A client process that starts a long stream and dies with SIGKILL after its first token."""
    child = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, str(run.daemon.connection)],
                             stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    try:
        if child.stdout is not None and child.stdout.readline().strip() == "streaming":
            child.send_signal(signal.SIGKILL)
            run.killed += 1
        else:
            run.problems.append("a killed client never streamed")
    finally:
        child.kill()
        child.wait()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


def summarise(run: Run, answers: int, wall_s: float, ready_s: float) -> dict[str, Any]:
    reqs = run.requests
    pings = [ms for _, ms in run.pings]
    warm = [s for s in run.samples if s["answers"] >= min(500, answers // 10)] or run.samples
    first, last = warm[0], run.samples[-1]
    windows = []
    for start in range(0, answers, PHASE):
        in_phase = [r for r in reqs if start <= r["n"] < start + PHASE]
        if not in_phase:
            continue
        t_lo, t_hi = min(r["t"] for r in in_phase), max(r["t"] + r["total_s"] for r in in_phase)
        p = [ms for t, ms in run.pings if t_lo <= t <= t_hi]
        s = [x for x in run.samples if t_lo <= x["t"] <= t_hi] or [run.samples[-1]]
        windows.append({
            "answers_from": start, "answers_to": start + len(in_phase), "t_s": round(t_hi, 1),
            "ping_p50_ms": round(percentile(p, 50), 2), "ping_p99_ms": round(percentile(p, 99), 2),
            "ping_max_ms": round(max(p, default=0.0), 2),
            "fds": s[-1]["fds"], "threads": s[-1]["threads"], "rss_mb": s[-1]["rss_mb"],
            "answer_p50_s": round(percentile([r["total_s"] for r in in_phase], 50), 3),
        })
    complete = [r for r in reqs if r["kind"] == "complete"]
    return {
        "answers": len(reqs), "answers_requested": answers, "wall_s": round(wall_s, 1),
        "daemon_ready_s": ready_s,
        "by_kind": {k: sum(1 for r in reqs if r["kind"] == k) for k in ("complete", "cancel", "abandon")},
        "killed_clients": run.killed,
        "tokens_streamed": sum(r["tokens"] for r in complete),
        "lost_or_truncated": len(run.problems), "problems": run.problems[:50],
        "ping": {"count": len(pings), "p50_ms": round(percentile(pings, 50), 2),
                 "p99_ms": round(percentile(pings, 99), 2), "max_ms": round(max(pings, default=0.0), 2),
                 "worst_window_p99_ms": max((w["ping_p99_ms"] for w in windows), default=0.0)},
        "answer_latency_s": {"p50": round(percentile([r["total_s"] for r in complete], 50), 3),
                             "p99": round(percentile([r["total_s"] for r in complete], 99), 3)},
        "after_warmup": {"fds": [first["fds"], last["fds"]], "threads": [first["threads"], last["threads"]],
                         "rss_mb": [first["rss_mb"], last["rss_mb"]],
                         "rss_growth_pct": round((last["rss_mb"] / first["rss_mb"] - 1) * 100, 2)},
        "fds_range": [min(s["fds"] for s in run.samples), max(s["fds"] for s in run.samples)],
        "threads_range": [min(s["threads"] for s in run.samples), max(s["threads"] for s in run.samples)],
        "windows": windows,
    }


def thin(points: list[Any], n: int = 600) -> list[Any]:
    step = max(1, len(points) // n)
    return points[::step]


def plot(result: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    samples = result["series"]["samples"]
    fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    x = [s["answers"] for s in samples]
    for ax, key, label in ((axes[0], "fds", "open descriptors"), (axes[1], "threads", "threads"),
                           (axes[2], "rss_mb", "RSS (MB)")):
        ax.plot(x, [s[key] for s in samples], lw=1.2)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    wins = result["summary"]["windows"]
    axes[3].plot([w["answers_to"] for w in wins], [w["ping_p99_ms"] for w in wins], marker="o", ms=3,
                 label="p99 per 250 answers")
    axes[3].plot([w["answers_to"] for w in wins], [w["ping_p50_ms"] for w in wins], marker=".", ms=3, label="p50")
    axes[3].axhline(20, color="red", lw=0.8, ls="--", label="20 ms goal")
    axes[3].set_ylabel("ping (ms)")
    axes[3].set_xlabel("answers")
    axes[3].set_ylim(bottom=0)
    axes[3].legend(fontsize=8)
    axes[3].grid(alpha=0.3)
    fig.suptitle(f"qwen-tray endurance: {result['summary']['answers']} answers, tiny model, CPU "
                 f"({result['summary']['ping']['count']} pings)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def section(result: dict[str, Any], png_name: str | None) -> str:
    s = result["summary"]
    m = result["machine"]
    aw = s["after_warmup"]
    lines = [BEGIN, "## Endurance (bench/endurance.py)", ""]
    lines.append(f"`{result['command']}` on {m.get('cpu', '?')} ({m.get('logical_cores', '?')} cores), the tiny "
                 f"fixture model on CPU, one headless daemon; started {result['started']}, load average before "
                 f"{result['load_before']}, after {result['load_after']} (a shared machine: other engineers' "
                 "work ran alongside).")
    lines.append("")
    if s.get("stopped_early"):
        lines.append(f"**This run stopped early**: {s['answers']} of the {s['answers_requested']} answers the script "
                     "does by default fitted the time slot it had on the shared machine (`--until`).")
        lines.append("")
    lines.append(f"{s['answers']} answers of {s['answers_requested']} requested in {s['wall_s']:.0f} s "
                 f"({s['by_kind']['complete']} complete, {s['by_kind']['cancel']} cancelled after their first "
                 f"chunk, {s['by_kind']['abandon']} abandoned mid-stream), plus {s['killed_clients']} client "
                 f"processes killed mid-stream; {s['tokens_streamed']:,} tokens in the complete answers. "
                 f"4 to 8 clients at once, a new connection per client and phase of {PHASE}.")
    lines.append("")
    lines.append("| | result |")
    lines.append("|---|---|")
    lines.append(f"| lost or truncated answers | {s['lost_or_truncated']} |")
    lines.append(f"| open descriptors after warm-up (first → last) | {aw['fds'][0]} → {aw['fds'][1]} "
                 f"(range over the run {s['fds_range'][0]}–{s['fds_range'][1]}) |")
    lines.append(f"| threads after warm-up | {aw['threads'][0]} → {aw['threads'][1]} "
                 f"(range {s['threads_range'][0]}–{s['threads_range'][1]}) |")
    lines.append(f"| RSS after warm-up | {aw['rss_mb'][0]:.0f} → {aw['rss_mb'][1]:.0f} MB "
                 f"({aw['rss_growth_pct']:+.1f} %) |")
    p = s["ping"]
    lines.append(f"| ping while streaming ({p['count']} pings) | p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, "
                 f"max {p['max_ms']} ms; worst p99 of a {PHASE}-answer window {p['worst_window_p99_ms']} ms |")
    lines.append(f"| answer time (complete answers) | p50 {s['answer_latency_s']['p50']} s, "
                 f"p99 {s['answer_latency_s']['p99']} s |")
    lines.append("")
    over = [w for w in s["windows"] if w["ping_p99_ms"] >= 20]
    lines.append(f"Goal, p99 ping under 20 ms in every window of {PHASE} answers: "
                 + ("met." if not over else f"not met in {len(over)} of {len(s['windows'])} windows (answers "
                    + ", ".join(f"{w['answers_from']}–{w['answers_to']}: {w['ping_p99_ms']} ms" for w in over)
                    + "); compare the load average above: on 2 cores every other process's work delays the "
                      "daemon's socket thread too."))
    lines.append("")
    lines.append("| answers | time (s) | ping p50 / p99 / max (ms) | fds | threads | RSS (MB) | answer p50 (s) |")
    lines.append("|---|---|---|---|---|---|---|")
    wins = s["windows"]
    shown = wins if len(wins) <= 12 else wins[:: max(1, len(wins) // 10)] + [wins[-1]]
    seen = set()
    for w in shown:
        if w["answers_from"] in seen:
            continue
        seen.add(w["answers_from"])
        lines.append(f"| {w['answers_from']}–{w['answers_to']} | {w['t_s']:.0f} | {w['ping_p50_ms']} / "
                     f"{w['ping_p99_ms']} / {w['ping_max_ms']} | {w['fds']} | {w['threads']} | {w['rss_mb']:.0f} | "
                     f"{w['answer_p50_s']} |")
    lines.append("")
    if png_name:
        lines.append(f"![descriptors, threads, RSS and ping over the run]({png_name})")
        lines.append("")
    if s["problems"]:
        lines.append("Problems recorded: " + "; ".join(s["problems"][:10]))
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write_section(md: Path, text: str) -> None:
    """Put the section into benchmarks.md, replacing an earlier one (bench/report.py keeps it when it rewrites)."""
    old = md.read_text(encoding="utf-8") if md.is_file() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    md.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--answers", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None,
                    help="where endurance.json/.png and benchmarks.md are (default docs/; --smoke: a temp folder)")
    ap.add_argument("--smoke", action="store_true", help="60 answers into a temp folder (never touches docs/)")
    ap.add_argument("--until", default="", metavar="HH:MM",
                    help="UTC time after which no new phase starts (a shared machine's time slot); the report "
                         "states how many answers ran")
    ap.add_argument("--render", action="store_true", help="only redraw the plot and section from endurance.json")
    args = ap.parse_args(argv)
    if args.render:
        args.out = args.out or ROOT / "docs"
        result = json.loads((args.out / "endurance.json").read_text(encoding="utf-8"))
        png = plot(result, args.out / "endurance.png")
        write_section(args.out / "benchmarks.md", section(result, png.name if png else None))
        return 0
    if args.smoke:
        args.answers = 60
        args.out = args.out or Path(tempfile.mkdtemp(prefix="qwen-endurance-"))
    args.out = args.out or ROOT / "docs"
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="qwen-endurance-daemon-"))
    log = (work / "daemon.log").open("w")
    daemon = Daemon(str(TINY), work, log)
    load_before = load_avg()
    ready_s = daemon.start(timeout=120)
    run = Run(daemon, args.seed)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    background = [threading.Thread(target=pinger, args=(run,), daemon=True),
                  threading.Thread(target=sampler, args=(run,), daemon=True)]
    for t in background:
        t.start()
    t0 = time.monotonic()
    try:
        for start in range(0, args.answers, PHASE):
            if args.until and time.strftime("%H:%M", time.gmtime()) >= args.until:
                print(f"stopping at {start} answers: it is past {args.until} UTC", flush=True)
                break
            todo = list(range(start, min(args.answers, start + PHASE)))[::-1]
            lock = threading.Lock()
            n_clients = rng.randint(4, 8)
            workers = [threading.Thread(target=client_worker, args=(run, todo, lock, w)) for w in range(n_clients)]
            for w in workers:
                w.start()
            killed_client(run)
            for w in workers:
                w.join()
            done = len(run.requests)
            print(f"{done} answers, {time.monotonic() - t0:.0f} s, {n_clients} clients, "
                  f"{run.samples[-1] if run.samples else {}}, problems {len(run.problems)}", flush=True)
    finally:
        wall = time.monotonic() - t0
        time.sleep(1.5)  # a last sample with every client gone
        run.stop.set()
        for t in background:
            t.join(5)
        daemon.stop()
        log.close()
    summary = summarise(run, args.answers, wall, ready_s)
    summary["stopped_early"] = len(run.requests) < args.answers
    result = {
        "command": "python bench/endurance.py" + ("" if args.answers == 10_000 else f" --answers {args.answers}")
                   + (f" --until {args.until}" if args.until else ""),
        "started": started, "machine": machine_info(), "load_before": load_before, "load_after": load_avg(),
        "summary": summary,
        "series": {"samples": thin(run.samples), "pings": thin(run.pings, 2000)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "endurance.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    png = plot(result, args.out / "endurance.png")
    write_section(args.out / "benchmarks.md", section(result, png.name if png else None))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("windows", "problems")}, indent=1))
    print(f"written to {args.out}")
    return 0 if not run.problems else 1


if __name__ == "__main__":
    sys.exit(main())
