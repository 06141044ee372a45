"""Where a decode step's time goes: OpenVINO's per-node performance counters on the language model.

Why: the daemon decodes at a fraction of the memory-bandwidth ceiling (docs/benchmarks.md);
before changing knobs, measure which operations take the time and what each knob moves.
This compiles `openvino_language_model.xml` (the stateful SDPA form; the daemon's CPU path
runs the same matmuls through paged attention) with PERF_COUNT, prefills `--context` tokens of
text-only embeddings, then times `--steps` single-token decode steps per property variant.
Numbers are the model's own, with random inputs: no prompt, no tokenizer, no image.

    python bench/profile_decode.py --model ~/.cache/qwen-tray-bench/standin-4b/ir --json out.json
    python bench/profile_decode.py --smoke      # the tiny fixture, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "tiny-qwen3-vl-ov"

# name -> CPU properties. "default" is what the daemon passes (nothing but CACHE_DIR).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "kv f16": {"KV_CACHE_PRECISION": "f16"},
    "kv f32": {"KV_CACHE_PRECISION": "f32"},
    "dyn quant off": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0},
    "dyn quant 128": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 128},
    "1 stream 2 threads": {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": 2},
    "1 thread": {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": 1},
    "no pinning": {"ENABLE_CPU_PINNING": False},
    "latency hint": {"PERFORMANCE_HINT": "LATENCY"},
    "f32": {"INFERENCE_PRECISION_HINT": "f32"},
    "f32 dyn quant 32": {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 32},
    "f32 dyn quant 128": {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 128},
}


def _inputs(model: Any, tokens: int, past: int, hidden: int, rng: np.random.Generator) -> dict[str, Any]:
    names = {i.get_any_name() for i in model.inputs}
    pos = np.arange(past, past + tokens, dtype=np.int64)[None, None, :].repeat(3, axis=0)
    feed: dict[str, Any] = {
        "inputs_embeds": rng.standard_normal((1, tokens, hidden), dtype=np.float32) * 0.02,
        "attention_mask": np.ones((1, past + tokens), dtype=np.int64),
        "position_ids": pos if "position_ids" in names else None,
        "beam_idx": np.zeros((1,), dtype=np.int32),
    }
    if "visual_pos_masks" in names:
        feed["visual_pos_masks"] = np.zeros((1, tokens), dtype=bool)
    if "deepstack_visual_embeds" in names:
        feed["deepstack_visual_embeds"] = np.zeros((3, 0, hidden), dtype=np.float32)
    return {k: v for k, v in feed.items() if v is not None and k in names}


def _part(node_type: str, name: str) -> str:
    """Which part of a decode step a node belongs to: the LM head, the layers' matmuls, attention, the rest."""
    low = name.lower()
    if "FullyConnected" in node_type or node_type == "MatMul":
        if "lm_head" in low:
            return "LM head matmul"
        if "mlp" in low:
            return "MLP matmuls (gate, up, down)"
        if "attn" in low:
            return "attention projections (q, k, v, o)"
        return "other matmuls"
    if "Attention" in node_type:
        return "attention (SDPA over the KV cache)"
    return "everything else"


def profile(model_dir: Path, props: dict[str, Any], context: int, steps: int, top: int,
            counters: bool = True) -> dict[str, Any]:
    """Decode-step times (median) and, with `counters`, where they go; without, the clock alone (PERF_COUNT
    costs time per node, so speed comparisons run without it)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(model_dir / "openvino_language_model.xml")
    hidden = int(model.input("inputs_embeds").get_partial_shape()[2].get_length())
    t0 = time.perf_counter()
    compiled = core.compile_model(model, "CPU", {**props, "PERF_COUNT": counters})
    compile_s = time.perf_counter() - t0
    req = compiled.create_infer_request()
    rng = np.random.default_rng(0)
    req.reset_state()
    t0 = time.perf_counter()
    req.infer(_inputs(model, context, 0, hidden, rng))
    prefill_s = time.perf_counter() - t0
    times: list[float] = []
    by_type: dict[str, float] = defaultdict(float)
    by_exec: dict[str, float] = defaultdict(float)
    by_part: dict[str, float] = defaultdict(float)  # matmuls split by what they compute (from node names)
    for i in range(steps):
        feed = _inputs(model, 1, context + i, hidden, rng)
        t0 = time.perf_counter()
        req.infer(feed)
        times.append(time.perf_counter() - t0)
        if i >= 1 and counters:  # the first decode step compiles shapes; leave it out of the counters
            for info in req.profiling_info:
                ms = info.real_time.total_seconds() * 1000.0
                by_type[info.node_type] += ms
                by_exec[f"{info.node_type} / {info.exec_type}"] += ms
                by_part[_part(info.node_type, info.node_name)] += ms
    counted = max(1, steps - 1)
    total = sum(by_type.values()) / counted
    rows = sorted(((k, v / counted) for k, v in by_exec.items()), key=lambda kv: -kv[1])[:top]
    step_ms = statistics.median(times[1:] or times) * 1000.0
    out = {"properties": {k: str(v) for k, v in props.items()}, "compile_s": round(compile_s, 2),
           "prefill_tokens": context, "prefill_s": round(prefill_s, 3), "decode_step_ms": round(step_ms, 2),
           "decode_tps": round(1000.0 / step_ms, 2), "counted_ms_per_step": round(total, 2),
           "top": [{"op": k, "ms": round(v, 3), "share": round(v / total, 4) if total else 0.0} for k, v in rows],
           "by_type": {k: round(v / counted, 3) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])[:top]},
           "by_part": {k: {"ms": round(v / counted, 3), "share": round(v / counted / total, 4) if total else 0.0}
                       for k, v in sorted(by_part.items(), key=lambda kv: -kv[1])}}
    del req, compiled
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="model folder (default: the 4B stand-in in the bench cache)")
    ap.add_argument("--smoke", action="store_true", help="tiny fixture, two variants, few steps")
    ap.add_argument("--context", type=int, default=700, help="prefilled tokens before decoding (default 700)")
    ap.add_argument("--steps", type=int, default=12, help="decode steps per variant (default 12)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--no-counters", action="store_true", help="time the steps only (PERF_COUNT slows each node)")
    ap.add_argument("--rounds", type=int, default=0,
                    help="compare the variants: this many rounds, interleaved, timed without counters")
    a = ap.parse_args(argv)
    if a.smoke:
        model_dir, names, a.context, a.steps = TINY, ["default", "kv f32"], 32, 4
    else:
        if a.model is None:
            sys.path.insert(0, str(Path(__file__).parent))
            from make_standin import cache_root

            a.model = cache_root() / "standin-4b" / "ir"
        model_dir, names = a.model.expanduser(), [n.strip() for n in a.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants: {', '.join(unknown)}")
    sys.path.insert(0, str(Path(__file__).parent))
    import machine

    result = {"model": str(model_dir), "machine": machine.machine_info(), "load_avg_before": machine.load_avg(),
              "variants": {}}
    if a.rounds:
        return compare(result, model_dir, names, a)
    for name in names:
        r = profile(model_dir, VARIANTS[name], a.context, a.steps, a.top, counters=not a.no_counters)
        result["variants"][name] = r
        print(f"{name:>22}: {r['decode_step_ms']:8.2f} ms/token ({r['decode_tps']:.2f} tokens/s), "
              f"prefill {r['prefill_tokens']} tokens {r['prefill_s']:.1f} s", flush=True)
        for row in r["top"][:6]:
            print(f"{'':>24}{row['op']:<40} {row['ms']:8.2f} ms  {row['share'] * 100:5.1f} %")
        for part, v in r["by_part"].items():
            print(f"{'':>24}{part:<40} {v['ms']:8.2f} ms  {v['share'] * 100:5.1f} %")
    result["load_avg_after"] = machine.load_avg()
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


def compare(result: dict[str, Any], model_dir: Path, names: list[str], a: argparse.Namespace) -> int:
    """Median decode step per variant over `a.rounds` interleaved rounds (drift hits every variant alike)."""
    import machine

    result.update(rounds=a.rounds, context=a.context, steps=a.steps)
    times: dict[str, list[float]] = {n: [] for n in names}
    for rnd in range(a.rounds):
        for name in names:
            r = profile(model_dir, VARIANTS[name], a.context, a.steps, a.top, counters=False)
            times[name].append(r["decode_step_ms"])
            print(f"round {rnd + 1} {name:>22}: {r['decode_step_ms']:8.2f} ms/token", flush=True)
    base = statistics.median(times[names[0]])
    for name in names:
        med = statistics.median(times[name])
        result["variants"][name] = {"properties": {k: str(v) for k, v in VARIANTS[name].items()},
                                    "timed_step_ms": times[name], "median_step_ms": round(med, 2),
                                    "median_tps": round(1000.0 / med, 2), "vs_first": round(med / base, 3)}
        print(f"{name:>22}: {med:8.2f} ms/token ({1000.0 / med:.2f} tokens/s), {med / base:.2f}x the first")
    result["load_avg_after"] = machine.load_avg()
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


def host_line(result: dict[str, Any]) -> str:
    """'Host: CPU (cores; ISA), load average before / after' for a section's first paragraph."""
    m = result["machine"]
    return (f"Host: {m.get('cpu', '?')} ({m.get('logical_cores', '?')} logical cores; {', '.join(m.get('isa', []))}), "
            f"load average {result.get('load_avg_before', ['-'])[0]} before / "
            f"{result.get('load_avg_after', ['-'])[0]} after (1 min)")


def knobs_markdown(result: dict[str, Any]) -> str:
    """The CPU-properties table (`--rounds`) for docs/benchmarks.md."""
    lines = ["## Decode by CPU property (bench/profile_decode.py --rounds)", "",
             f"The stand-in's language model (`{Path(result['model']).name}`), {result['context']} tokens of context, "
             f"the median of {result['steps'] - 1} timed decode steps per run, {result['rounds']} rounds with the "
             "variants interleaved, no performance counters. " + host_line(result) + ".", "",
             "| variant | CPU properties | ms per token (rounds) | tokens/s | vs default |", "|---|---|---:|---:|---:|"]
    for name, v in result["variants"].items():
        props = ", ".join(f"`{k}={val}`" for k, val in v["properties"].items()) or "none: the plugin's defaults"
        rounds = " / ".join(f"{t:.0f}" for t in v["timed_step_ms"])
        lines.append(f"| {name} | {props} | {v['median_step_ms']:.1f} ({rounds}) | {v['median_tps']:.2f} | "
                     f"{v['vs_first']:.2f}x |")
    lines += ["", "Command: `python bench/profile_decode.py --rounds 2 --steps 24 --variants ... "
              "--json docs/benchmarks-knobs.json`.", ""]
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    """The "where a decode step's time goes" section of docs/benchmarks.md (bench/report.py appends it)."""
    lines = ["## Where a decode step's time goes (bench/profile_decode.py)", "",
             f"OpenVINO's per-node performance counters (`PERF_COUNT`) on the stand-in's language model "
             f"(`{Path(result['model']).parent.name}`), compiled for CPU with the daemon's default properties, "
             "after a prefill of random text embeddings; the stateful SDPA form of the model, whose matmuls and "
             "weights are the ones the daemon's paged-attention path runs. " + host_line(result)
             + ", on a machine shared with other engineers.", ""]
    for name, v in result["variants"].items():
        lines += [f"**{name}**: {v['decode_step_ms']:.1f} ms per token ({v['decode_tps']:.2f} tokens/s) at "
                  f"{v['prefill_tokens']} tokens of context, the median of the timed steps.",
                  "", "| part of the step | share of counted time |", "|---|---:|"]
        lines += [f"| {part} | {p['share'] * 100:.1f} % |" for part, p in v.get("by_part", {}).items()]
        lines += ["", "| node type / kernel | share |", "|---|---:|"]
        lines += [f"| {row['op']} | {row['share'] * 100:.1f} % |" for row in v["top"][:6]]
        lines.append("")
    lines += ["The counters' times add up to more than the wall-clock step (they are the plugin's per-node times, "
              "not a partition of one step), so only the shares are shown. Command: "
              "`flock /tmp/qwen-heavy.lock python bench/profile_decode.py --variants default --steps 12 "
              "--json docs/benchmarks-decode.json`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
