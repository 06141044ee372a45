"""`qwen-tray model pull` against the loopback hub stand-in, for the three kinds of source.

Real HTTP (huggingface_hub's own client against tests/hub_server.py), real NNCF compression,
real OpenVINO loading and generation; the checkpoint path is in test_model_store.py (it needs
the export extra). The IR paths run in a fresh process with torch's stack made absent, as in a
venv without the export extra, and once with torch installed to show it is never imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO
from hub_server import fake_hub
from model_forms import build_forms
from PIL import Image

from qwen_tray.engine.base import GenerationOptions, Message
from qwen_tray.engine.hub import RemoteFile
from qwen_tray.engine.ir_info import read_ir_weights
from qwen_tray.engine.loader import load_engine
from qwen_tray.engine.pull import Plan, PullError, check_resources, classify
from qwen_tray.engine.store import resolve_model
from qwen_tray.paths import bundled_model_dir, default_paths

LM_BIN = "openvino_language_model.bin"


@pytest.fixture(scope="session")
def forms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_forms(tmp_path_factory.mktemp("forms"))


def hub_env(hub) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1",
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def pull(hub, repo: str, tmp_path: Path, *extra: str, no_torch: bool = True,
         timeout: int = 240) -> tuple[subprocess.CompletedProcess[str], dict]:
    """`qwen-tray model pull REPO` in a fresh process; returns the result and its torch-import report."""
    report = tmp_path / f"report-{time.monotonic_ns()}.json"
    cmd = [sys.executable, str(REPO / "tests" / "pull_child.py"), *(["--no-torch"] if no_torch else []),
           str(report), "model", "pull", repo, *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=hub_env(hub))
    return out, json.loads(report.read_text()) if report.is_file() else {}


def generates(model_dir: Path) -> int:
    engine = load_engine(model_dir, "genai", "CPU")
    try:
        result = engine.generate([Message("user", "What is this?", [Image.new("RGB", (64, 64), (200, 30, 30))])],
                                 GenerationOptions(max_new_tokens=5, min_new_tokens=5), lambda c: None,
                                 threading.Event())  # forced: an early end token would depend on the CPU's numerics
    finally:
        engine.close()
    return result.figures.completion_tokens


def lm_element_types(model_dir: Path) -> set[str]:
    """Element types of the language model's weight-sized constants (128x128 or more), read by OpenVINO itself."""
    import math

    import openvino as ov

    model = ov.Core().read_model(model_dir / "openvino_language_model.xml")
    return {op.get_element_type().get_type_name() for op in model.get_ordered_ops()
            if op.get_type_name() == "Constant" and math.prod(op.get_output_shape(0)) >= 128 * 128}


def size_of(path: Path) -> int:
    """A file's size, 0 once it is gone (a small download's `.incomplete` is renamed as it finishes)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def store() -> Path:
    return default_paths().models_dir


def test_ready_int4_ir_is_downloaded_and_verified_only(forms: dict[str, Path], tmp_path: Path) -> None:
    with fake_hub({"OpenVINO/Tiny-VL-int4-ov": forms["int4"]}) as hub:
        out, report = pull(hub, "OpenVINO/Tiny-VL-int4-ov", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert report == {"imported": [], "blocked": True}
    assert "NPU-ready OpenVINO IR: download and verify only" in out.stdout
    stored = store() / "Tiny-VL-int4"
    assert f"done: {stored}" in out.stdout
    files = {p.name for p in forms["int4"].iterdir()}
    # Byte for byte what the hub serves, plus our metadata; no resume notes, no README.
    assert {p.name for p in stored.iterdir()} == files | {"qwen-tray.json"}
    for name in files:
        assert (stored / name).read_bytes() == (forms["int4"] / name).read_bytes()
    meta = json.loads((stored / "qwen-tray.json").read_text())
    assert meta["path"] == "ir-ready" and meta["npu_ready"] is True
    assert sorted(p.name for p in store().iterdir()) == ["Tiny-VL-int4"], "no staging folder is left"
    assert generates(stored) == 5


@pytest.mark.parametrize("no_torch", [True, False], ids=["without-torch", "torch-installed"])
def test_fp16_ir_is_compressed_to_int4_sym_without_torch(forms: dict[str, Path], tmp_path: Path,
                                                          no_torch: bool) -> None:
    with fake_hub({"OpenVINO/Tiny-VL-fp16-ov": forms["fp16"]}) as hub:
        out, report = pull(hub, "OpenVINO/Tiny-VL-fp16-ov", tmp_path, no_torch=no_torch)
    assert out.returncode == 0, out.stderr[-3000:]
    # Never imported: neither when absent (a venv without the export extra) nor when installed.
    assert report["imported"] == [], report
    assert "source: OpenVINO IR, language model fp16" in out.stdout
    assert "compress to int4 with NNCF" in out.stdout and "peak memory about" in out.stdout
    assert "[1/5] language_model: int4_sym, group 128, ratio 1.0" in out.stdout
    stored = store() / "Tiny-VL-int4"
    # Int4 symmetric, read from the IR: i4 weights (NNCF's int4_sym storage, no zero point) in
    # groups of 128 for every decoder MatMul; the LM head kept in 8 bit; nothing left in fp16.
    info = read_ir_weights(stored / "openvino_language_model.xml")
    matmuls = info.matmuls()
    assert {(w.storage, w.group_size) for w in matmuls[:-1]} == {("int4_sym", 128)}
    assert matmuls[-1].storage == "int8_asym"
    assert info.nncf["mode"] == "int4_sym" and info.nncf["group_size"] == "128" and info.nncf["ratio"] == "1.0"
    assert lm_element_types(stored) == {"i4", "u8"}  # no u4 (asymmetric int4), no float weights
    # The other parts in int8 symmetric.
    for part in ("text_embeddings", "vision_embeddings", "vision_embeddings_merger"):
        weights = read_ir_weights(stored / f"openvino_{part}_model.xml").weights
        assert weights and {w.storage for w in weights} == {"int8_sym"}, part
    assert json.loads((stored / "qwen-tray.json").read_text())["path"] == "ir-compress"
    assert sorted(p.name for p in store().iterdir()) == ["Tiny-VL-int4"]
    assert generates(stored) == 5


# What the export extra brings (torch, its CUDA wheels and tracer helpers, transformers, optimum-intel).
EXPORT_EXTRA = ("torch", "torchvision", "torchgen", "functorch", "triton", "nvidia", "transformers", "optimum")


def test_fp16_ir_compressed_channel_wise_with_an_int4_lm_head(forms: dict[str, Path], tmp_path: Path) -> None:
    """The faster layout of docs/benchmarks.md's weight table, on request: still NPU-ready."""
    with fake_hub({"OpenVINO/Tiny-VL-fp16-ov": forms["fp16"]}) as hub:
        out, _ = pull(hub, "OpenVINO/Tiny-VL-fp16-ov", tmp_path, "--group-size", "-1", "--lm-head", "int4")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[1/5] language_model: int4_sym, group -1, ratio 1.0, LM head int4" in out.stdout
    stored = store() / "Tiny-VL-int4"
    info = read_ir_weights(stored / "openvino_language_model.xml")
    assert {(w.storage, w.group_size) for w in info.matmuls()} == {("int4_sym", 0)}  # the head too; 0 = per channel
    assert lm_element_types(stored) == {"i4"}
    assert info.npu_ready() == (True, "symmetric int4, channel-wise")
    assert generates(stored) == 5


def venv_without_export_extra(root: Path) -> Path:
    """A real venv whose site-packages holds the shared venv's packages except the export extra's, by symlink.

    Why symlinks: installing openvino, genai, nncf and friends afresh takes ~45 s and a package index;
    linking the installed ones takes a moment and gives the same thing: `import torch` fails because torch
    is not there, not because a test blocked it.
    """
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    target = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    shared = Path(sysconfig.get_paths()["purelib"])
    for entry in shared.iterdir():
        base = entry.name.split("-")[0].split(".")[0].lower()
        if base.startswith(EXPORT_EXTRA) or base.startswith("optimum_intel"):
            continue
        (target / entry.name).symlink_to(entry)
    return python


def test_fp16_pull_runs_in_a_venv_without_the_export_extra(forms: dict[str, Path], tmp_path: Path) -> None:
    python = venv_without_export_extra(tmp_path / "venv")
    missing = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "No module named 'torch'" in missing.stderr
    with fake_hub({"OpenVINO/Tiny-VL-fp16-ov": forms["fp16"]}) as hub:
        out = subprocess.run([str(python), "-m", "qwen_tray", "model", "pull", "OpenVINO/Tiny-VL-fp16-ov"],
                             capture_output=True, text=True, timeout=240, env=hub_env(hub))
    assert out.returncode == 0, out.stderr[-3000:]
    stored = store() / "Tiny-VL-int4"
    assert f"done: {stored}" in out.stdout
    verify = subprocess.run([str(python), "-m", "qwen_tray", "model", "verify", str(stored)], capture_output=True,
                            text=True, timeout=240, env=hub_env(hub))
    assert verify.returncode == 0 and "generate: ok" in verify.stdout, verify.stderr[-2000:]


def test_interrupted_download_resumes_and_ends_verified(forms: dict[str, Path], tmp_path: Path) -> None:
    with fake_hub({"OpenVINO/Tiny-VL-int4-ov": forms["int4"]}) as hub:
        hub.drop_halfway.add(LM_BIN)
        out, _ = pull(hub, "OpenVINO/Tiny-VL-int4-ov", tmp_path)
        ranges = hub.gets(LM_BIN)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"connection lost while downloading {LM_BIN}" in out.stdout
    # First GET from byte 0, cut halfway; the second asks only for the rest.
    assert ranges[0] == "" and len(ranges) == 2 and ranges[1].startswith("bytes=")
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) > 0
    stored = store() / "Tiny-VL-int4" / LM_BIN
    want = hashlib.sha256((forms["int4"] / LM_BIN).read_bytes()).digest()
    assert hashlib.sha256(stored.read_bytes()).digest() == want


def test_ctrl_c_leaves_nothing_in_the_store_and_the_next_pull_resumes(forms: dict[str, Path], tmp_path: Path) -> None:
    with fake_hub({"OpenVINO/Tiny-VL-int4-ov": forms["int4"]}) as hub:
        hub.stall_halfway.add(LM_BIN)
        report = tmp_path / "r.json"
        # As in a terminal: SIGINT raises KeyboardInterrupt (a shell's background job would inherit it ignored),
        # and the stall outlasts the wait below (huggingface_hub's read timeout would otherwise retry after 10 s).
        proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "pull_child.py"), str(report), "model", "pull",
                                 "OpenVINO/Tiny-VL-int4-ov"], env={**hub_env(hub), "HF_HUB_DOWNLOAD_TIMEOUT": "120"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        partial = store() / ".staging" / "Tiny-VL-int4" / "download" / ".cache" / "huggingface" / "download"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(size_of(p) > 0 for p in partial.glob("*.incomplete")):
            time.sleep(0.1)
        assert any(partial.glob("*.incomplete")), "the download never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-2000:]
        # Nothing where the loader looks: the store holds only the hidden staging folder.
        assert [p.name for p in store().iterdir()] == [".staging"]
        assert resolve_model("", default_paths()) == (bundled_model_dir(), True)
        listed = subprocess.run([sys.executable, "-m", "qwen_tray", "model", "list"], capture_output=True, text=True,
                                env=hub_env(hub), timeout=60)
        assert "unfinished pulls (Tiny-VL-int4)" in listed.stdout
        out, _ = pull(hub, "OpenVINO/Tiny-VL-int4-ov", tmp_path)
        ranges = hub.gets(LM_BIN)
    assert out.returncode == 0, out.stderr[-3000:]
    assert ranges[-1].startswith("bytes=") and ranges[-1] != "bytes=0-", "the second run resumed the partial file"
    assert sorted(p.name for p in store().iterdir()) == ["Tiny-VL-int4"]


def test_wrong_sha256_is_refused_and_nothing_reaches_the_store(forms: dict[str, Path], tmp_path: Path) -> None:
    with fake_hub({"OpenVINO/Tiny-VL-int4-ov": forms["int4"]}) as hub:
        hub.corrupt.add(LM_BIN)
        out, _ = pull(hub, "OpenVINO/Tiny-VL-int4-ov", tmp_path)
    assert out.returncode == 2, out.stdout
    err = out.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{LM_BIN}: sha256" in err and "does not match the published" in err
    assert "nothing reached the store" in err
    assert [p.name for p in store().iterdir()] == [".staging"]
    assert not list(store().rglob(LM_BIN)), "the corrupt file was deleted, not kept to resume from"


def test_too_little_disk_is_refused_before_downloading(forms: dict[str, Path], tmp_path: Path) -> None:
    with fake_hub({"OpenVINO/Tiny-VL-fp16-ov": forms["fp16"]}) as hub:
        hub.claimed_size[LM_BIN] = 10**16  # 10 PB: more than any disk here
        out, _ = pull(hub, "OpenVINO/Tiny-VL-fp16-ov", tmp_path)
        gets = [path for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path]
    assert out.returncode == 2
    assert "not enough disk space" in out.stderr and "nothing was downloaded" in out.stderr
    assert gets == [], "refused before any file was downloaded"
    assert not any(p.name != ".staging" for p in store().iterdir())


def test_a_second_pull_of_the_same_model_is_refused_while_one_runs(forms: dict[str, Path], tmp_path: Path) -> None:
    from filelock import FileLock

    lock = store() / ".staging" / "Tiny-VL-int4.lock"
    lock.parent.mkdir(parents=True)
    with FileLock(str(lock)), fake_hub({"OpenVINO/Tiny-VL-int4-ov": forms["int4"]}) as hub:
        out, _ = pull(hub, "OpenVINO/Tiny-VL-int4-ov", tmp_path)
    assert out.returncode == 2 and "another `qwen-tray model pull` of Tiny-VL-int4 is running" in out.stderr


def test_memory_check_states_and_refuses() -> None:
    plan = Plan("ir-compress", [], download_bytes=10, output_bytes=10, peak_memory=12 * 10**9)
    check_resources(plan, free_disk=10**12, free_memory=16 * 10**9, where=Path("/x"))
    with pytest.raises(PullError, match=r"the compression peaks near 12.00 GB, only 8.00 GB is available"):
        check_resources(plan, free_disk=10**12, free_memory=8 * 10**9, where=Path("/x"))
    check_resources(plan, free_disk=10**12, free_memory=8 * 10**9, where=Path("/x"), check_memory=False)


def test_classify_tells_ir_from_checkpoint() -> None:
    ir = [RemoteFile("openvino_language_model.xml", 1), RemoteFile("openvino_language_model.bin", 1),
          RemoteFile("config.json", 1)]
    ckpt = [RemoteFile("config.json", 1), RemoteFile("model-00001-of-00002.safetensors", 1)]
    assert classify(ir) == "ir" and classify(ckpt) == "checkpoint"
    with pytest.raises(PullError, match="neither an OpenVINO Qwen3-VL IR"):
        classify([RemoteFile("README.md", 1)])


def test_checkpoint_without_export_extra_is_refused_before_downloading(forms: dict[str, Path], tmp_path: Path) -> None:
    with fake_hub({"acme/tiny-qwen3-vl": forms["hf"]}) as hub:
        out, report = pull(hub, "acme/tiny-qwen3-vl", tmp_path)
        gets = [path for method, path, _ in hub.requests if method == "GET" and "/resolve/" in path]
    assert out.returncode == 2 and "needs the 'export' extra" in out.stderr
    assert gets == [] and report["imported"] == []


def test_list_marks_formats_npu_readiness_and_the_model_run_uses(forms: dict[str, Path]) -> None:
    import shutil

    shutil.copytree(forms["fp16"], store() / "fp16-model")
    rows = json.loads(subprocess.run([sys.executable, "-m", "qwen_tray", "model", "list", "--json"],
                                     capture_output=True, text=True, timeout=60).stdout)
    by = {r["name"]: r for r in rows}
    assert by["fp16-model"]["weight_format"] == "fp16" and by["fp16-model"]["npu_ready"] is False
    assert "not symmetric int4" in by["fp16-model"]["npu_why"] and by["fp16-model"]["in_use"] is True
    assert by["(demo model)"]["demo"] is True and by["(demo model)"]["npu_ready"] is True
    assert by["(demo model)"]["in_use"] is False
    text = subprocess.run([sys.executable, "-m", "qwen_tray", "model", "list"], capture_output=True, text=True,
                          timeout=60).stdout
    assert "* fp16-model" in text and "fp16" in text and "* = the model `qwen-tray run` uses" in text
    rm = subprocess.run([sys.executable, "-m", "qwen_tray", "model", "rm", "fp16-model"], capture_output=True,
                        text=True, timeout=60)
    assert rm.returncode == 0 and "removed fp16-model" in rm.stdout
    assert not (store() / "fp16-model").exists()
    text = subprocess.run([sys.executable, "-m", "qwen_tray", "model", "list"], capture_output=True, text=True,
                          timeout=60).stdout
    assert "* (demo model)" in text and "the demo model answers with noise" in text
    bad = subprocess.run([sys.executable, "-m", "qwen_tray", "model", "rm", "../x"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "is not a model name" in bad.stderr
