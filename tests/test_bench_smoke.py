"""bench/run.py --smoke on the tiny model: every path and section runs for real and the output is complete.

Why in CI: the full benchmark is a manual, many-minute run on a 4B stand-in; without
this the script would rot between runs. Nothing here judges speed: the assertions
are about the shape and the consistency of what the benchmark reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("daemon", "genai", "optimum")
SMOKE_TOKENS = 8


def _stat_ok(s: dict | None) -> bool:
    return bool(s) and s["n"] >= 1 and s["min"] <= s["median"] <= s["max"]


def test_bench_smoke_runs_every_path_and_section(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out-dir", str(out),
         "--work-dir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "benchmarks.json").read_text())
    assert result["mode"] == "smoke"
    assert set(result["sections"]) == {"core", "idle", "concurrency", "speed", "ipc", "desktop", "bandwidth"}
    speed = result["sections"]["speed"]["data"]
    assert set(speed["modes"]) == {"on", "off"}
    for mode in speed["modes"].values():
        assert {"1", "2"} <= set(mode["concurrency"])
        assert all(mode["concurrency"][n]["tokens"] >= 1 for n in ("1", "2"))
        assert _stat_ok(mode["follow_up"]["ratio"]) and _stat_ok(mode["interactive"]["busy_ttft_s"])
    mach = result["machine"]
    assert mach["cpu"] and mach["logical_cores"] >= 1 and mach["memory_gb"] > 0 and mach["os"]

    core = result["sections"]["core"]["data"]
    assert set(core["paths"]) == set(PATHS)
    for name, p in core["paths"].items():
        for metric in ("ttft_s", "decode_tps", "e2e_s", "cpu_s_per_token", "tokens", "prompt_tokens", "follow_ttft_s"):
            assert _stat_ok(p[metric]), (name, metric, p[metric])
        assert p["peak_rss_bytes"] > 10 * 2**20, name
        assert p["load"]["cold_s"] > 0 and p["load"]["warm_s"] > 0, name
        assert len(p["runs"]) == core["rounds"] == 1 and len(p["follow_runs"]) == 1
        run = p["runs"][0]
        assert 0 < run["ttft_s"] <= run["e2e_s"]
        assert run["cpu_s"] > 0
        assert 0 <= run["foreign_cpu_share"] <= 1
        # every path saw the same prompt: same image size, question and chat template
        assert run["prompt_tokens"] == core["paths"]["genai"]["runs"][0]["prompt_tokens"]
    # min = max new tokens is forced in-process; the daemon's client asks for max and reports what came
    assert core["paths"]["genai"]["tokens"]["median"] == SMOKE_TOKENS
    assert core["paths"]["optimum"]["tokens"]["median"] == SMOKE_TOKENS
    assert 1 <= core["paths"]["daemon"]["tokens"]["median"] <= SMOKE_TOKENS
    d = core["paths"]["daemon"]["runs"][0]
    # the daemon process's CPU is counted, not only the client's
    assert d["daemon_cpu_s"] > 0 and d["cpu_s"] >= d["daemon_cpu_s"]
    # the follow-up carries the first answer: its prompt is longer than the first question's
    for p in core["paths"].values():
        assert p["follow_runs"][0]["prompt_tokens"] > p["runs"][0]["prompt_tokens"]
    assert {"a_over_b_decode", "a_over_c_decode", "a_over_b_e2e", "a_over_c_e2e"} <= set(core["ratios"])

    idle = result["sections"]["idle"]["data"]
    assert idle["seconds"] >= 2.0 and idle["cpu_s"] >= 0 and idle["threads"] > 1

    conc = result["sections"]["concurrency"]["data"]
    assert {k for k in conc if k.isdigit()} == {"1", "2"}
    assert conc["2"]["clients"] == 2 and conc["2"]["tokens"] >= 2 and conc["2"]["aggregate_tps"] > 0

    ipc = result["sections"]["ipc"]["data"]
    assert ipc["bgra_bytes"] == 1920 * 1080 * 4 and 0 < ipc["png_bytes"] < ipc["bgra_bytes"]
    for key in ("ping_s", "png_round_trip_s", "bgra_round_trip_s", "inprocess_s"):
        assert _stat_ok(ipc[key]), key

    desk = result["sections"]["desktop"]["data"]
    assert desk["screen"] == [1920, 1080]
    assert _stat_ok(desk["capture_s"]) and _stat_ok(desk["hotkey_to_popup_s"])

    bw = result["sections"]["bandwidth"]["data"]
    assert bw["read_gbps"] > 0 and set(bw["read_gbps_by_threads"]) == {"1", "2", "4"}
    lm = (Path(result["model"]["dir"]) / "openvino_language_model.bin").stat().st_size
    assert bw["weights"]["per_token"] == lm
    assert abs(bw["ceiling_tps"] - bw["read_gbps"] * 1e9 / lm) < 1e-3 * bw["ceiling_tps"]
    assert set(bw["share"]) == set(PATHS)

    md = (out / "benchmarks.md").read_text()
    for heading in ("## Machine and model", "## The seed's workload, three ways", "### Follow-up question",
                    "## Idle", "## Desktop (Xvfb 1920x1080)", "## IPC overhead", "## Concurrency",
                    "## Speed where users feel it", "## The limit: memory bandwidth", "## What these numbers mean"):
        assert heading in md, heading
    assert "(a)/(b) = **" in md and "(a)/(c) = **" in md
    assert "![tokens/s and CPU seconds per token per path](benchmarks.png)" in md
    with Image.open(out / "benchmarks.png") as png:
        assert png.format == "PNG" and png.width > 600 and png.height > 300

    # --merge onto a report from another host: only this run's section names this host, and the core table
    # (the other host's decode) is not divided by this host's bandwidth.
    result["machine"] = {**result["machine"], "cpu": "another CPU", "isa": ["avx2"]}
    (out / "benchmarks.json").write_text(json.dumps(result))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--sections", "bandwidth", "--merge",
         "--out-dir", str(out), "--work-dir", str(tmp_path / "work2")],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    merged = json.loads((out / "benchmarks.json").read_text())
    assert merged["machine"]["cpu"] == "another CPU"
    assert merged["sections"]["bandwidth"]["machine"]["cpu"] == mach["cpu"]
    assert "machine" not in merged["sections"]["core"] and "machine" not in merged["sections"]["speed"]
    assert "share" not in merged["sections"]["bandwidth"]["data"]
    assert "share of the ceiling" not in (out / "benchmarks.md").read_text()


def _core(decode: dict[str, list[float]], prompt: int = 650) -> dict:
    """A core section as run.py records it, from decode speeds per path (one request per value)."""
    paths = {}
    for name, speeds in decode.items():
        runs = [{"ttft_s": 1.0, "decode_tps": v, "e2e_s": 1.0 + 127 / v, "cpu_s_per_token": 0.1, "tokens": 128,
                 "prompt_tokens": prompt, "foreign_cpu_share": 0.0, "round": i} for i, v in enumerate(speeds)]
        paths[name] = {"label": name, "runs": runs, "follow_runs": [{"ttft_s": 0.5, "round": 0}],
                       "load": {"cold_s": 1.0}, "peak_rss_bytes": 100}
    return {"paths": paths, "tokens_forced": 128, "follow_tokens": 8, "image_size": [800, 800], "question": "q",
            "follow_rounds": 1}


def test_merge_adds_rounds_and_recomputes_medians_and_ratios() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import run

    first = run.summarize_core(_core({"daemon": [4.0, 2.0, 4.2], "genai": [4.0, 3.0, 1.0], "optimum": [2.0] * 3}))
    assert first["rounds"] == 3 and first["paths"]["genai"]["decode_tps"]["median"] == 3.0
    later = run.summarize_core(_core({"daemon": [4.4, 4.6, 4.8], "genai": [4.0, 4.0, 4.0], "optimum": [3.0] * 3}))
    merged = run.merge_core(first, later)
    assert merged["rounds"] == 6 and merged["follow_rounds"] == 2
    d = merged["paths"]["daemon"]
    assert d["decode_tps"] == {"median": 4.3, "min": 2.0, "max": 4.8, "n": 6}
    assert [r["round"] for r in d["runs"]] == [0, 1, 2, 3, 4, 5]
    assert merged["ratios"]["a_over_b_decode"] == round(4.3 / 4.0, 3)
    assert merged["ratios"]["a_over_c_decode"] == round(4.3 / 2.5, 3)
    assert d["follow_ttft_s"]["n"] == 2
    # a different workload must not be merged into the same table
    other = run.summarize_core(_core({"daemon": [1.0], "genai": [1.0], "optimum": [1.0]}))
    other["tokens_forced"] = 64
    with pytest.raises(run.BenchError, match="tokens_forced"):
        run.merge_core(merged, other)
