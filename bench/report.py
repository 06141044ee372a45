"""Turn a bench/run.py result (benchmarks.json) into benchmarks.md and benchmarks.png.

Why a separate step: the measurement is slow and the write-up is not; the report
can be regenerated from the JSON (`python bench/report.py docs/benchmarks.json`)
without measuring again, and it never holds a number the JSON does not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PATHS = ("daemon", "genai", "optimum")
SHORT = {"daemon": "(a) daemon", "genai": "(b) VLMPipeline", "optimum": "(c) optimum-intel"}


def _fmt(x: Any, digits: int = 2, unit: str = "") -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}{unit}"


def _stat(s: dict[str, Any] | None, digits: int = 2, scale: float = 1.0) -> str:
    """'median (min-max)'."""
    if not s:
        return "-"
    med, lo, hi = (s[k] * scale for k in ("median", "min", "max"))
    if s.get("n", 1) == 1 or lo == hi:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def _gb(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**30:.2f} GiB"


def _load_line(sec: dict[str, Any]) -> str:
    before, after = sec.get("load_avg_before"), sec.get("load_avg_after")
    others = sec.get("other_test_processes", 0)
    when = f"measured {sec['measured'][11:16]} UTC, " if sec.get("measured") else ""
    return (f"{when}load average before {before[0] if before else '-'} / after {after[0] if after else '-'} "
            f"(1 min), {others} other test process(es), {sec.get('seconds', 0):.0f} s")


def _verdict(paths: dict[str, Any]) -> str:
    """One sentence on (a) against (b), decided by the data: do their min-max ranges overlap?"""
    a, b = paths["daemon"]["decode_tps"], paths["genai"]["decode_tps"]
    if not a or not b:
        return ""
    if a["max"] < b["min"]:
        return " The daemon decodes slower than VLMPipeline called directly in every round."
    if b["max"] < a["min"]:
        return " The daemon decodes faster than VLMPipeline called directly in every round (same engine: noise)."
    return (" The round-to-round ranges of (a) and (b) overlap: whatever the daemon adds over calling "
            "VLMPipeline yourself is smaller than this shared machine's noise.")


def chart(result: dict[str, Any], out: Path) -> Path | None:
    """Tokens/s and CPU seconds per generated token per path (median, min-max bars)."""
    core = result["sections"].get("core", {}).get("data")
    if not core:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = core["paths"]
    names = [SHORT[p] for p in PATHS]
    colours = ["#2b6cb0", "#38a169", "#dd6b20"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, title, unit in (
        (axes[0], "decode_tps", "Decode speed", "tokens/s (after the first token)"),
        (axes[1], "cpu_s_per_token", "CPU cost", "CPU seconds per generated token"),
    ):
        med = [(paths[p][key] or {}).get("median") or 0 for p in PATHS]
        lo = [m - ((paths[p][key] or {}).get("min") or m) for p, m in zip(PATHS, med, strict=True)]
        hi = [((paths[p][key] or {}).get("max") or m) - m for p, m in zip(PATHS, med, strict=True)]
        bars = ax.bar(names, med, color=colours, yerr=[lo, hi], capsize=5)
        for b, m in zip(bars, med, strict=True):  # value inside the bar, clear of the min-max whisker
            ax.annotate(f"{m:.2f}" if key == "decode_tps" else f"{m:.3f}", (b.get_x() + b.get_width() / 2, m * 0.12),
                        ha="center", va="bottom", fontsize=10, color="white", fontweight="bold")
        ax.set_title(f"{title} (median; whiskers: min-max)", fontsize=10)
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", labelsize=9)
    bw = result["sections"].get("bandwidth", {}).get("data")
    top = max((paths[p]["decode_tps"] or {}).get("max") or 0 for p in PATHS)
    if bw and bw.get("ceiling_tps") and bw["ceiling_tps"] < 5 * top:  # (the tiny model's ceiling is off the chart)
        axes[0].axhline(bw["ceiling_tps"], color="#c53030", linestyle="--", linewidth=1)
        axes[0].annotate(f"bandwidth ceiling {bw['ceiling_tps']:.1f}", (0.02, bw["ceiling_tps"]),
                         xycoords=("axes fraction", "data"), va="bottom", fontsize=8, color="#c53030")
        axes[0].set_ylim(0, max(bw["ceiling_tps"] * 1.15, axes[0].get_ylim()[1]))
    m = result["model"]["name"]
    fig.suptitle(f"{m}: {core['tokens_forced']} tokens, {core['rounds']} interleaved rounds, CPU "
                 f"({result['machine']['logical_cores']} cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def markdown(result: dict[str, Any], png_name: str | None) -> str:
    m, mach, secs = result["model"], result["machine"], result["sections"]
    L: list[str] = []
    add = L.append
    add("# Benchmarks")
    add("")
    add(f"Measured {result['started']} to {result['finished']} (UTC) by `bench/run.py` "
        f"({result['mode']} run). Generated from `benchmarks.json` by `bench/report.py`; every number below "
        "is in that file.")
    add("")
    core0 = secs.get("core", {}).get("data")
    bw0 = secs.get("bandwidth", {}).get("data")
    if core0:
        P0, r0 = core0["paths"], core0["ratios"]
        dec = {p: (P0[p]["decode_tps"] or {}).get("median") for p in PATHS}
        cpu = {p: (P0[p]["cpu_s_per_token"] or {}).get("median") for p in PATHS}
        add("## Headline")
        add("")
        add(f"On this 2-core CPU, {m['name']}, {core0['tokens_forced']} tokens after a "
            f"{(P0['genai']['prompt_tokens'] or {}).get('median', 0):.0f}-token prompt, medians of "
            f"{core0['rounds']} interleaved rounds: the daemon decodes **{_fmt(dec['daemon'])} tokens/s**, "
            f"VLMPipeline called directly {_fmt(dec['genai'])}, the seed's optimum-intel path "
            f"{_fmt(dec['optimum'])}: (a)/(b) = {_fmt(r0.get('a_over_b_decode'), 2)}, (a)/(c) = "
            f"{_fmt(r0.get('a_over_c_decode'), 2)}. CPU seconds per generated token: {_fmt(cpu['daemon'], 2)} / "
            f"{_fmt(cpu['genai'], 2)} / {_fmt(cpu['optimum'], 2)}."
            + (f" The memory-bandwidth ceiling is {_fmt(bw0['ceiling_tps'], 1)} tokens/s." if bw0 else "")
            + _verdict(P0))
        add("")
    add("## Machine and model")
    add("")
    add("| | |")
    add("|---|---|")
    isa = f"; vector ISA: {', '.join(mach['isa'])}" if mach.get("isa") else ""
    add(f"| CPU | {mach['cpu']} ({mach['logical_cores']} logical cores{isa}; no GPU, no NPU) |")
    add(f"| Memory | {mach['memory_gb']} GB |")
    add(f"| OS | {mach['os']} |")
    add(f"| Software | Python {mach['python']}, openvino {mach['openvino']}, openvino-genai {mach['openvino_genai']}, "
        f"optimum-intel {mach['optimum_intel']} |")
    add(f"| Model | {m['name']}: int4 symmetric, group 128, ratio 1.0 (exported by `daemon.engine.export`); "
        f"IR weights {m['ir_bytes'] / 2**30:.2f} GiB |")
    add(f"| Load at start | load average {mach['load_avg']}; {result['other_test_processes_at_start']} other "
        "test process(es) running |")
    add("")
    add("Command(s) of this run (sections from several runs are merged with `--merge`; each section says when "
        "it was measured), and how to repeat it:")
    add("")
    add("```")
    for run in result.get("runs") or [result]:
        add(f"{run['command'].strip()}    # {run['started']} - {run['finished']}")
    add("")
    add("# the stand-in alone (built on first use by run.py; ~3 min + ~8 min, 15 GB peak, 2.9 GB IR):")
    add("python bench/make_standin.py --shape 4b      # or 2b; cached in ~/.cache/qwen-tray-bench")
    add("python bench/run.py --shape 2b               # the smaller published shape")
    add("python bench/run.py --smoke --out-dir /tmp/bench   # tiny model, ~1 min: what CI runs")
    add("python bench/report.py docs/benchmarks.json  # redraw this page and the chart from the JSON")
    add("```")
    add("")
    core = secs.get("core", {}).get("data")
    if core:
        P = core["paths"]
        add("## The seed's workload, three ways")
        add("")
        add(f"One fresh {core['image_size'][0]}x{core['image_size'][1]} image per first question (random noise, "
            f"a new seed each time, so VLMPipeline's prompt-prefix cache cannot help) and the question "
            f"\"{core['question']}\"; {core['tokens_forced']} new tokens, greedy. Paths interleaved "
            f"A B C A B C after one short warm-up request each ({core['warmup_size'][0]}x{core['warmup_size'][1]} "
            f"image, 8 tokens), {core['rounds']} rounds; median (min-max).")
        add("")
        qc = core.get("quiet_checks") or []
        waits = ""
        if qc:
            waits = (f" Before each measured request the run waited for idle CPUs and no other test run: "
                     f"{len(qc)} checks, {sum(q['waited_s'] for q in qc):.0f} s waited in all, "
                     f"{sum(1 for q in qc if not q['quiet'])} gave up waiting (not quiet).")
        add(f"Conditions: {_load_line(secs['core'])}.{waits}")
        earlier = secs["core"].get("earlier") or []
        for i, e in enumerate(earlier if isinstance(earlier, list) else [earlier]):
            add("")
            add(f"Earlier rounds of this table (merged run {i + 1}): {_load_line(e)}.")
        add("")
        add("| | " + " | ".join(P[p]["label"] for p in PATHS) + " |")
        add("|---|---:|---:|---:|")

        def row(name: str, fn: Any) -> None:
            add(f"| {name} | " + " | ".join(fn(P[p]) for p in PATHS) + " |")

        row("prompt tokens", lambda x: _stat(x["prompt_tokens"], 0))
        row("generated tokens", lambda x: _stat(x["tokens"], 0))
        row("time to first token, s", lambda x: _stat(x["ttft_s"]))
        row("decode, tokens/s", lambda x: _stat(x["decode_tps"]))
        row("end to end, s", lambda x: _stat(x["e2e_s"]))
        row("CPU s per generated token", lambda x: _stat(x["cpu_s_per_token"], 3))
        row("peak RSS", lambda x: _gb(x["peak_rss_bytes"]))
        if all(P[p].get("foreign_cpu_share") for p in PATHS):
            row("others' CPU use during the request (runs that record it)",
                lambda x: _stat(x["foreign_cpu_share"], 1, 100) + " %")
        row("load, compile cache cold, s (first run)", lambda x: _fmt((x["load"] or {}).get("cold_s")))
        row("load, compile cache warm, s (first run)", lambda x: _fmt((x["load"] or {}).get("warm_s")))
        add("")
        r = core["ratios"]
        add(f"Ratios: decode (a)/(b) = **{_fmt(r.get('a_over_b_decode'), 3)}**, (a)/(c) = "
            f"**{_fmt(r.get('a_over_c_decode'), 3)}**; end to end (a)/(b) = {_fmt(r.get('a_over_b_e2e'), 3)}, "
            f"(a)/(c) = {_fmt(r.get('a_over_c_e2e'), 3)} (for end to end, below 1 means (a) is faster).")
        add("")
        add("How each figure is taken, the same for all three: the clock starts when the caller has the "
            "image and the question and calls; time to first token ends at the first streamed text; decode "
            "tokens/s = (generated tokens - 1) / (end - first text); CPU seconds are the process's user + "
            "system time over the request (for (a): the daemon process plus the client process) divided by "
            "the generated tokens, so prefill is included; peak RSS is the process's VmHWM (for (a) the daemon; "
            f"its client peaked at {_gb(P['daemon'].get('client_peak_rss_bytes'))}). Load = process start to "
            "ready to answer (for (a): `qwen-tray run --headless` until `status` says ready), first with an "
            "empty OpenVINO compile cache (`CACHE_DIR`), then again with it filled. (a) sends the image as "
            "PNG bytes (encoded before the clock starts, as a tool that has a screenshot file would); (b) and "
            "(c) take the decoded pixels. The protocol has no min_new_tokens, so (a) asks for max_new_tokens "
            f"= {core['tokens_forced']} and the generated-tokens row shows how many came.")
        add("")
        add("### Follow-up question")
        add("")
        add(f"In {core['follow_rounds']} of the rounds, after the first question: \"{core['follow_up']}\" in "
            f"the same conversation ({core['follow_tokens']} tokens). Each path carries the history its own "
            "way: (a) sends the whole conversation again (image as PNG; the daemon's engine renders it and "
            "VLMPipeline reuses the KV cache of the prefix it has seen), (b) appends to a `ChatHistory` and "
            "calls `generate(history)` as openvino.genai documents, (c) renders the conversation with the "
            "processor and runs `generate` on all of it (no cache between calls).")
        add("")
        add("| | " + " | ".join(SHORT[p] for p in PATHS) + " |")
        add("|---|---:|---:|---:|")
        row("first question TTFT, s", lambda x: _stat(x["ttft_s"]))
        row("follow-up TTFT, s", lambda x: _stat(x["follow_ttft_s"]))

        def speedup(x: dict[str, Any]) -> str:
            a, b = (x["ttft_s"] or {}).get("median"), (x["follow_ttft_s"] or {}).get("median")
            return f"{a / b:.1f}x" if a and b else "-"

        row("first / follow-up", speedup)
        add("")
    idle = secs.get("idle", {}).get("data")
    if idle:
        add("## Idle")
        add("")
        used = (f"{idle['cpu_s']:.2f} CPU seconds" if idle["cpu_s"] >= 0.01 else
                "under 0.01 CPU seconds (nothing the kernel's 10 ms accounting tick registered)")
        add(f"The daemon with the model loaded and nothing to do, {idle['threads']} threads: **{used} over "
            f"{idle['seconds']:.0f} s** ({idle['cpu_percent']:.3f} % of one core). Every thread blocks on a "
            "socket, queue or event; nothing polls. Conditions: " + _load_line(secs["idle"]) + ".")
        add("")
    desk = secs.get("desktop", {}).get("data")
    if desk:
        add("## Desktop (Xvfb 1920x1080)")
        add("")
        add("| | median (min-max), ms |")
        add("|---|---:|")
        add("| capture of the monitor under the cursor (`daemon.capture`, mss) | "
            f"{_stat(desk['capture_s'], 1, 1000)} |")
        add(f"| Ctrl+Alt+Q (XTEST) to popup mapped (MapNotify), capture included | "
            f"{_stat(desk['hotkey_to_popup_s'], 1, 1000)} |")
        add("")
        add(f"`qwen-tray run` with the {desk['model']}; {desk['repeats']} presses after one warm-up, Escape closes "
            "the popup between presses. Xvfb has no compositor and no GPU: a real desktop adds its own frame "
            "time. Conditions: " + _load_line(secs["desktop"]) + ".")
        add("")
    elif "desktop" in result.get("settings", {}).get("sections", []):
        add("## Desktop")
        add("")
        add("Not measured in this run.")
        add("")
    ipc = secs.get("ipc", {}).get("data")
    if ipc:
        add("## IPC overhead")
        add("")
        add(f"A 1920x1080 screenshot-like frame ({ipc['png_bytes'] / 1e6:.2f} MB as PNG, "
            f"{ipc['bgra_bytes'] / 1e6:.2f} MB as raw BGRA), {ipc['model']}, median (min-max) of {ipc['repeats']}:")
        add("")
        add("| | ms |")
        add("|---|---:|")
        add(f"| ping round trip (CURVE-encrypted TCP on 127.0.0.1) | {_stat(ipc['ping_s'], 2, 1000)} |")
        add(f"| in-process call (fit to the image budget + generate) | {_stat(ipc['inprocess_s'], 1, 1000)} |")
        add(f"| through the daemon, PNG | {_stat(ipc['png_round_trip_s'], 1, 1000)} |")
        add(f"| through the daemon, raw BGRA | {_stat(ipc['bgra_round_trip_s'], 1, 1000)} |")
        add(f"| overhead PNG / BGRA (median difference to in-process) | {ipc['png_overhead_s'] * 1000:.1f} / "
            f"{ipc['bgra_overhead_s'] * 1000:.1f} |")
        add(f"| for reference: encoding the PNG in the client (not in the round trip) | "
            f"{ipc['png_encode_s'] * 1000:.1f} |")
        add("")
        add("The overhead is decoding (PNG) or converting (BGRA) on the daemon's side, the copy through "
            "ZeroMQ and the encryption; against a 4B answer's tens of seconds it is noise. Conditions: "
            + _load_line(secs["ipc"]) + ".")
        add("")
    conc = secs.get("concurrency", {}).get("data")
    if conc:
        add("## Concurrency")
        add("")
        add("N clients (one `ipc.client.Client` each) ask at the same moment, each with its own fresh image; "
            "aggregate = all generated tokens / wall time from the first request to the last answer.")
        add("")
        add(f"Workload per request: a fresh {conc['image_size'][0]}x{conc['image_size'][1]} image and "
            f"{conc['max_new_tokens']} new tokens (smaller than the seed's, so the 1/2/4-client runs fit the time "
            "a full run has; throughput after the first token does not depend on it).")
        add("")
        add("| clients | aggregate tokens/s | wall s | TTFT per client, s | end to end per client, s |")
        add("|---:|---:|---:|---:|---:|")
        for n, c in conc.items():
            if not n.isdigit():
                continue
            add(f"| {n} | {c['aggregate_tps']:.2f} | {c['wall_s']:.1f} | {_stat(c['ttft_s'])} | {_stat(c['e2e_s'])} |")
        add("")
        add("The daemon has one engine and one worker: requests queue and run one after another, so aggregate "
            "throughput stays that of one client while the later clients wait (their time to first token "
            "grows). Side by side they could not go faster here anyway: one generation already keeps both cores "
            "and the memory bus busy. Conditions: " + _load_line(secs["concurrency"]) + ".")
        add("")
    bw = secs.get("bandwidth", {}).get("data")
    if bw:
        w = bw["weights"]
        add("## The limit: memory bandwidth")
        add("")
        add(f"Read bandwidth measured: **{bw['read_gbps']:.1f} GB/s** (by threads: "
            + ", ".join(f"{k}: {v:.1f}" for k, v in bw["read_gbps_by_threads"].items())
            + f"; a one-thread copy moves {bw['copy_gbps_one_thread']:.1f} GB/s read + write). Method: "
            f"{bw['method']}.")
        add("")
        add(f"Bytes read per generated token: the language model's weights, "
            f"`openvino_language_model.bin` = **{w['per_token'] / 1e9:.3f} GB** (int4 weights with their fp16 "
            "scales, the LM head tied to the embeddings (NNCF keeps it 8-bit), norms). Not counted: the "
            "embedding table (one row per token), the vision models (prefill only), and the KV cache, "
            f"about {bw['kv_bytes_per_token_f16'] / 1e6:.0f} MB per token at f16 for a mean context of "
            f"{bw['mean_context']} tokens.")
        add("")
        add(f"Ceiling = bandwidth / bytes per token = **{_fmt(bw['ceiling_tps'])} tokens/s** "
            f"({_fmt(bw['ceiling_tps_with_kv'])} with the KV cache).")
        if bw.get("share"):
            add("")
            add("| | " + " | ".join(SHORT[p] for p in PATHS) + " |")
            add("|---|---:|---:|---:|")
            add("| share of the ceiling (median decode) | "
                + " | ".join(f"{bw['share'][p] * 100:.0f} %" for p in PATHS) + " |")
            if max(bw["share"].values()) < 0.5:
                add("")
                add("All three stay far below the ceiling, so decode here is most likely bound by compute, not "
                    "memory: on 2 cores each token's int4 weights must be unpacked and multiplied with the "
                    "vector extensions listed above. The paths share the same kernels, which is why they land "
                    "close together.")
        add("")
        add("Conditions: " + _load_line(secs["bandwidth"]) + ".")
        add("")
    if png_name:
        add(f"![tokens/s and CPU seconds per token per path]({png_name})")
        add("")
    add("## What these numbers mean, and what they don't")
    add("")
    add("- They compare the three ways to run the same model on the same CPU, side by side and interleaved, so "
        "drift on a shared machine hits all three alike. The daemon's cost over calling VLMPipeline yourself is "
        "the (a)/(b) ratio; the gain over the seed's optimum-intel code is (a)/(c).")
    add("- CPU only. The target is an Intel Core Ultra laptop with the language model on the NPU and vision on "
        "the iGPU; no GPU or NPU exists here, so nothing here predicts those devices' speed (the seed's 22.7 "
        "tokens/s on a Core Ultra 7 258V is an NPU figure).")
    add("- Random weights with the published shape: the matmuls, bytes per token and the memory traffic are "
        "those of the real model, and with the output length forced so is the work; the text is noise. With "
        "real weights an answer that ends early would be shorter, not slower per token.")
    add("- Time to first token here is dominated by the vision encoder and the prefill on 2 cores; it says "
        "little about an iGPU, where vision runs.")
    add("- The CPU's vector extensions (listed above) set the speed of OpenVINO's int4 kernels and above all of "
        "the prefill: a host with AVX2 only is several times slower than one with AVX-512 or AMX. Compare the "
        "paths within one table, not figures across machines.")
    add("- Absolute figures move with the machine's load; the conditions line under each section says what it "
        "was. The ratios are the robust part.")
    add("")
    return "\n".join(L)


def write_report(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path | None]:
    out_dir = Path(out_dir)
    png = chart(result, out_dir / "benchmarks.png")
    md = out_dir / "benchmarks.md"
    md.write_text(markdown(result, png.name if png else None), encoding="utf-8")
    return md, png


if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.json"
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    md_path, png_path = write_report(json.loads(src.read_text(encoding="utf-8")), src.parent)
    print(md_path, png_path)
