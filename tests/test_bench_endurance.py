"""bench/endurance.py --smoke: the endurance benchmark runs for real (60 answers, cancelled, abandoned and killed
clients) and reports what it measured; bench/report.py keeps its section when it rewrites benchmarks.md.
Nothing here judges speed or memory; that is the full run's job (docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_endurance_smoke_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "benchmarks.md").write_text("# Benchmarks\n\nearlier text\n")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "endurance.py"), "--smoke", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "endurance.json").read_text())
    s = result["summary"]
    assert s["answers"] == 60 and s["lost_or_truncated"] == 0, s["problems"]
    assert sum(s["by_kind"].values()) == 60 and s["killed_clients"] == 1
    assert s["ping"]["count"] > 0 and result["series"]["samples"]
    assert (out / "endurance.png").stat().st_size > 1000
    md = (out / "benchmarks.md").read_text()
    assert md.startswith("# Benchmarks\n\nearlier text") and "## Endurance" in md and "| lost or truncated" in md

    sys.path.insert(0, str(ROOT / "bench"))
    import report

    section = md[md.index(report.ENDURANCE_BEGIN):]
    kept = report.ENDURANCE_BEGIN + section.split(report.ENDURANCE_BEGIN, 1)[1].split(report.ENDURANCE_END)[0]
    bench = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    report.write_report(bench, out)  # the main report, regenerated: the endurance section stays
    assert kept in (out / "benchmarks.md").read_text()
