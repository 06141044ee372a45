"""`qwen-tray model pull|export|list|verify` and which model the daemon picks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import TINY_HF, qwen_tray_cmd
from PIL import Image

from qwen_tray.engine.base import GenerationOptions, Message
from qwen_tray.engine.ir_info import read_ir_weights
from qwen_tray.engine.loader import load_engine
from qwen_tray.engine.store import ModelNotFound, resolve_model, store_name
from qwen_tray.paths import bundled_model_dir, default_paths


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(qwen_tray_cmd() + list(args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_pull_offline_says_what_to_do() -> None:
    out = run_cli("model", "pull", env={"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "offline" in out.stderr and "qwen-tray model export SRC OUT" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_pull_with_unreachable_hub_says_what_to_do() -> None:
    # A closed port on loopback stands in for "no internet": the connection is refused at once.
    out = run_cli("model", "pull", "Qwen/Qwen3-VL-2B-Instruct",
                  env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2"})
    assert out.returncode == 2, out.stdout
    assert "could not download Qwen/Qwen3-VL-2B-Instruct" in out.stderr and "Traceback" not in out.stderr
    assert not any(default_paths().models_dir.glob("Qwen3-VL-2B*")), "a failed pull leaves nothing in the store"


def test_list_shows_complete_and_incomplete_models(tiny_model: Path) -> None:
    out = run_cli("model", "list")
    assert out.returncode == 0 and "no models in" in out.stdout
    models = default_paths().models_dir
    shutil.copytree(tiny_model, models / "tiny")
    (models / "broken").mkdir()
    data = json.loads(run_cli("model", "list", "--json").stdout)
    by_name = {m["name"]: m for m in data}
    assert by_name["tiny"]["complete"] is True and by_name["tiny"]["size_bytes"] > 100_000
    assert by_name["broken"]["complete"] is False


def test_verify_loads_and_generates(tiny_model: Path) -> None:
    out = run_cli("model", "verify", str(tiny_model))
    assert out.returncode == 0, out.stderr
    assert "files: complete" in out.stdout and "load: ok on CPU" in out.stdout and "generate: ok, " in out.stdout
    assert "weights: int4_sym g128 + int8_asym (1 layer) (NPU-ready" in out.stdout


def test_verify_on_npu_without_one_fails_and_says_where_and_why(tiny_model: Path) -> None:
    out = run_cli("model", "verify", str(tiny_model), "--device", "NPU")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "load: asked for NPU, loaded on CPU (CPU) instead" in out.stdout
    assert "did not load on NPU: it runs on CPU (CPU) because" in out.stderr
    assert "no NPU is present" in out.stderr and "Traceback" not in out.stderr


def test_verify_incomplete_folder(tmp_path: Path, tiny_model: Path) -> None:
    shutil.copytree(tiny_model, tmp_path / "m")
    (tmp_path / "m" / "openvino_language_model.bin").unlink()
    out = run_cli("model", "verify", str(tmp_path / "m"))
    assert out.returncode == 2 and "missing openvino_language_model.bin" in out.stderr


def test_resolve_prefers_configured_then_store_then_demo(tiny_model: Path, tmp_path: Path) -> None:
    paths = default_paths()
    assert resolve_model("", paths) == (bundled_model_dir(), True)
    shutil.copytree(tiny_model, paths.models_dir / store_name("Qwen/Qwen3-VL-4B-Instruct"))
    assert resolve_model("", paths) == (paths.models_dir / "Qwen3-VL-4B-Instruct-int4", False)
    assert resolve_model(str(tiny_model), paths) == (tiny_model, False)
    with pytest.raises(ModelNotFound, match="model.path in the config is .*no folder there") as info:
        resolve_model(str(tmp_path / "nope"), paths)
    assert "--model" not in str(info.value)  # `run` has no --model: the advice is about the config key


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.export
def test_export_turns_the_hf_fixture_into_ir_that_generates(tmp_path: Path, tiny_model: Path) -> None:
    out_dir = tmp_path / "ir"
    out = run_cli("model", "export", str(TINY_HF), str(out_dir), "--weight-format", "int4", "--sym",
                  "--group-size", "128", "--ratio", "1.0", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"done: {out_dir}" in out.stdout
    # Same weights, same settings: the committed IR is reproduced byte for byte (the fixture is honest).
    assert digest(out_dir) == digest(tiny_model)
    engine = load_engine(out_dir, "genai", "CPU")
    result = engine.generate([Message("user", "What?", [Image.new("RGB", (64, 64))])],
                             GenerationOptions(max_new_tokens=5), lambda c: None, threading.Event())
    assert result.figures.completion_tokens == 5
    assert not list(tmp_path.glob(".export-*")), "no staging folder is left behind"


@pytest.mark.export
def test_export_channel_wise_with_an_int4_lm_head(tmp_path: Path) -> None:
    """The layout that decoded fastest in docs/benchmarks.md's weight table, through optimum's export."""
    out_dir = tmp_path / "ir"
    out = run_cli("model", "export", str(TINY_HF), str(out_dir), "--group-size", "-1", "--lm-head", "int4",
                  timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "group -1, ratio 1.0, LM head int4" in out.stdout
    info = read_ir_weights(out_dir / "openvino_language_model.xml")
    assert {(w.storage, w.group_size) for w in info.matmuls()} == {("int4_sym", 0)}  # the LM head too
    assert info.npu_ready() == (True, "symmetric int4, channel-wise")


def test_export_rejects_bad_source_and_knobs(tmp_path: Path) -> None:
    out = run_cli("model", "export", str(tmp_path), str(tmp_path / "o"))
    assert out.returncode == 2 and "is not a Hugging Face model folder" in out.stderr
    out = run_cli("model", "export", str(TINY_HF), str(tmp_path / "o"), "--ratio", "1.5")
    assert out.returncode == 2 and "ratio must be in (0, 1]" in out.stderr
    out = run_cli("model", "export", str(TINY_HF), str(tmp_path / "o"), "--weight-format", "int3")
    assert out.returncode == 2 and "invalid choice" in out.stderr
    out = run_cli("model", "export", str(TINY_HF), str(tmp_path / "o"), "--weight-format", "int8", "--lm-head", "int4")
    assert out.returncode == 2 and "an int4 LM head needs a 4-bit weight format" in out.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.export
def test_pull_of_a_checkpoint_exports_and_stores(tiny_model: Path) -> None:
    """Path (c): a repo with a PyTorch checkpoint and no IR goes through today's export (the export extra)."""
    from hub_server import fake_hub

    with fake_hub("acme/tiny-qwen3-vl", TINY_HF) as hub:
        out = run_cli("model", "pull", "acme/tiny-qwen3-vl", timeout=300,
                      env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    stored = default_paths().models_dir / "tiny-qwen3-vl-int4"
    assert f"done: {stored}" in out.stdout and "PyTorch checkpoint" in out.stdout
    meta = json.loads((stored / "qwen-tray.json").read_text())
    assert meta == {"source": "hf:acme/tiny-qwen3-vl", "revision": "0" * 40, "path": "checkpoint",
                    "weight_format": "int4_sym g128 + int8_asym (1 layer)", "npu_ready": True}
    # The NPU-ready settings reproduce the committed IR exactly; the metadata names the hub id, not a temp path.
    skip = {"qwen-tray.json", "openvino_config.json"}
    assert {k: v for k, v in digest(stored).items() if k not in skip} == {
        k: v for k, v in digest(tiny_model).items() if k not in skip}
    ov_cfg = json.loads((stored / "openvino_config.json").read_text())["quantization_config"]
    assert ov_cfg["processor"] == "acme/tiny-qwen3-vl"
    lm = ov_cfg["quantization_configs"]["lm_model"]
    assert (lm["bits"], lm["sym"], lm["group_size"], lm["ratio"]) == (4, True, 128, 1.0)
    assert [p.name for p in default_paths().models_dir.iterdir()] == ["tiny-qwen3-vl-int4"], "no leftovers"
    listed = {m["name"]: m for m in json.loads(run_cli("model", "list", "--json").stdout)}
    assert listed["tiny-qwen3-vl-int4"]["source"] == "hf:acme/tiny-qwen3-vl"
    assert listed["tiny-qwen3-vl-int4"]["complete"] is True and listed["tiny-qwen3-vl-int4"]["in_use"] is True
    again = run_cli("model", "pull", "acme/tiny-qwen3-vl")
    assert again.returncode == 0 and "already in the store" in again.stdout
