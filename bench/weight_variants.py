"""Decode speed by weight layout: the stand-in's language model compressed several ways, profiled alike.

Why: a decode step on CPU is ~90 % int4 weight matmuls (bench/profile_decode.py), so what can move it is
how the weights are stored: int4 in groups of 128 (the default export) against one scale per output channel
(which the NPU also accepts), and the LM head (151936 x 2560, tied to the embeddings) in int8, which NNCF
keeps by default, against int4. Random weights: the values do not matter, the bytes and shapes do.

Stages (each in a child process, so memory is returned between them; all cached beside the stand-in):
  1. the stand-in's Hugging Face folder (bench/make_standin.py's `hf` stage; ~3 min, ~10.5 GB peak);
  2. an fp16 IR of it (`qwen_tray.engine.export`, weight format fp16);
  3. per variant, NNCF `compress_weights` on the fp16 language model (the same call optimum-intel makes),
     saved in a folder beside the other sub-models of the default int4 IR (so the daemon can load it too);
  4. bench/profile_decode.py's `profile` on each variant's language model.

    python bench/weight_variants.py --json docs/benchmarks-weights.json
    python bench/weight_variants.py --variants "g128,channel" --steps 24
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_standin import cache_root, standin_dirs  # noqa: E402

# name -> NNCF compress_weights arguments (mode is always INT4_SYM, ratio 1.0: the project's export settings).
VARIANTS: dict[str, dict[str, Any]] = {
    "g128": {"group_size": 128, "all_layers": False},  # what `qwen-tray model` exports (LM head int8)
    "channel": {"group_size": -1, "all_layers": False},
    "g128 head-int4": {"group_size": 128, "all_layers": True},
    "channel head-int4": {"group_size": -1, "all_layers": True},
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("--", "-")


def variant_dir(shape: str, name: str) -> Path:
    return cache_root() / f"standin-{shape}" / f"lm-{slug(name)}"


def _run(args: list[str]) -> None:
    subprocess.run([sys.executable, *args], check=True)


def ensure_fp16(shape: str, log=print) -> Path:
    """The fp16 IR (only its language model is read); the HF folder is built first and kept."""
    hf, _ = standin_dirs(shape)
    fp16 = cache_root() / f"standin-{shape}" / "fp16"
    if (fp16 / "openvino_language_model.xml").is_file():
        return fp16
    if not (hf / "config.json").is_file():
        t0 = time.perf_counter()
        log("building the Hugging Face stand-in ...")
        _run([str(HERE / "make_standin.py"), "--shape", shape, "--stage", "hf"])
        log(f"  done in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    log("exporting fp16 IR ...")
    _run([__file__, "--stage", "fp16", "--shape", shape])
    log(f"  done in {time.perf_counter() - t0:.0f} s")
    return fp16


def export_fp16(shape: str) -> None:
    sys.path.insert(0, str(HERE.parent))
    from qwen_tray.engine.export import ExportOptions, export_model

    hf, _ = standin_dirs(shape)
    export_model(hf, cache_root() / f"standin-{shape}" / "fp16", ExportOptions(weight_format="fp16"))


def compress(shape: str, name: str) -> None:
    """NNCF on the fp16 language model; the other sub-models are links to the default int4 IR's files."""
    import nncf
    import openvino as ov

    fp16 = cache_root() / f"standin-{shape}" / "fp16"
    _, base = standin_dirs(shape)
    out = variant_dir(shape, name)
    out.mkdir(parents=True, exist_ok=True)
    model = ov.Core().read_model(fp16 / "openvino_language_model.xml")
    model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT4_SYM, ratio=1.0, **VARIANTS[name])
    partial = out / "openvino_language_model.partial.xml"
    ov.save_model(model, partial, compress_to_fp16=False)
    for ext in ("bin", "xml"):  # the .xml names its .bin by the file name: rename both, .bin first
        os.replace(partial.with_suffix(f".{ext}"), out / f"openvino_language_model.{ext}")
    for f in base.iterdir():
        link = out / f.name
        if not f.name.startswith("openvino_language_model.") and not link.exists():
            link.symlink_to(f)


def weights_bytes(folder: Path) -> int:
    return (folder / "openvino_language_model.bin").stat().st_size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="4b")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    ap.add_argument("--context", type=int, default=700)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds, variants interleaved (default 3)")
    ap.add_argument("--build-only", action="store_true", help="build the variants, profile nothing")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--stage", choices=("fp16", "compress", "profile"), help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--counters", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.stage == "fp16":
        export_fp16(a.shape)
        return 0
    if a.stage == "compress":
        compress(a.shape, a.name)
        return 0
    if a.stage == "profile":
        from profile_decode import profile

        r = profile(variant_dir(a.shape, a.name), {}, a.context, a.steps, 8, counters=a.counters)
        a.out.write_text(json.dumps(r), encoding="utf-8")
        return 0

    names = [n.strip() for n in a.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants: {', '.join(unknown)}")
    ensure_fp16(a.shape)
    for name in names:
        if not (variant_dir(a.shape, name) / "openvino_language_model.xml").is_file():
            t0 = time.perf_counter()
            print(f"compressing {name} ...", flush=True)
            _run([__file__, "--stage", "compress", "--shape", a.shape, "--name", name])
            print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    if a.build_only:
        return 0
    import machine

    result: dict[str, Any] = {"shape": a.shape, "machine": machine.machine_info(),
                              "load_avg_before": machine.load_avg(), "context": a.context, "steps": a.steps,
                              "variants": {}}
    tmp = cache_root() / f"standin-{a.shape}" / "profile.json"

    def one(name: str, counters: bool) -> dict[str, Any]:
        _run([__file__, "--stage", "profile", "--shape", a.shape, "--name", name, "--context", str(a.context),
              "--steps", str(a.steps), "--out", str(tmp), *(["--counters"] if counters else [])])
        return json.loads(tmp.read_text(encoding="utf-8"))

    # Round 0 with the performance counters (where the time goes), then timed rounds without them,
    # the variants interleaved so that drift on a shared machine hits all of them alike.
    for name in names:
        r = one(name, counters=True)
        r["variant"] = VARIANTS[name]
        r["language_model_bytes"] = weights_bytes(variant_dir(a.shape, name))
        r["timed_step_ms"] = []
        result["variants"][name] = r
        print(f"{name:>20}: language model {r['language_model_bytes'] / 1e9:.2f} GB", flush=True)
        for part, v in r["by_part"].items():
            print(f"{'':>22}{part:<40} {v['share'] * 100:5.1f} %")
    for rnd in range(a.rounds):
        for name in names:
            ms = one(name, counters=False)["decode_step_ms"]
            result["variants"][name]["timed_step_ms"].append(ms)
            print(f"round {rnd + 1} {name:>20}: {ms:8.2f} ms/token", flush=True)
    for name in names:
        v = result["variants"][name]
        v["median_step_ms"] = statistics.median(v["timed_step_ms"]) if v["timed_step_ms"] else v["decode_step_ms"]
        v["median_tps"] = round(1000.0 / v["median_step_ms"], 2)
        print(f"{name:>20}: {v['median_step_ms']:8.2f} ms/token ({v['median_tps']:.2f} tokens/s) "
              f"{v['timed_step_ms']}")
    tmp.unlink(missing_ok=True)
    result["load_avg_after"] = machine.load_avg()
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def markdown(result: dict[str, Any]) -> str:
    """The weight-layout table for docs/benchmarks.md (bench/report.py appends it)."""
    from profile_decode import host_line

    first = next(iter(result["variants"].values()))
    lines = ["## Decode by weight layout (bench/weight_variants.py)", "",
             f"The {result['shape'].upper()} stand-in's language model compressed four ways by NNCF from one fp16 IR "
             "(int4 symmetric, ratio 1.0; group 128 or one scale per output channel; the LM head in NNCF's default "
             f"int8 or in int4), {result['context']} tokens of context, the median of {result['steps'] - 1} timed "
             f"decode steps per run over {len(first['timed_step_ms'])} rounds with the variants interleaved, no "
             "performance counters, default CPU properties. " + host_line(result) + ".", "",
             "| layout | language model, GB | ms per token (rounds) | tokens/s | vs g128 | NPU-ready |",
             "|---|---:|---:|---:|---:|---|"]
    base = first["median_step_ms"]
    for name, v in result["variants"].items():
        rounds = " / ".join(f"{t:.0f}" for t in v["timed_step_ms"])
        lines.append(f"| {name} | {v['language_model_bytes'] / 1e9:.2f} | {v['median_step_ms']:.1f} ({rounds}) | "
                     f"{v['median_tps']:.2f} | {v['median_step_ms'] / base:.2f}x | yes |")
    lines += ["", "Random weights: speed only. Answer quality of the other layouts on the real model is not "
              "measured here (channel-wise int4 usually wants NNCF's data-aware AWQ and scale estimation, which "
              "need a calibration dataset); `qwen-tray model export|pull --group-size -1 --lm-head int4` makes the "
              "fastest one on request. Command: `python bench/weight_variants.py --rounds 3 --steps 24 "
              "--json docs/benchmarks-weights.json`.", ""]
    return "\n".join(lines)
