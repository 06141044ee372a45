"""`qwen-tray ask --model`: in-process answers streamed to stdout, JSON figures, and clear errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import qwen_tray_cmd
from PIL import Image


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(qwen_tray_cmd() + list(args), capture_output=True, text=True, timeout=120)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    p = tmp_path / "shot.png"
    Image.new("RGB", (640, 400), (30, 120, 200)).save(p)
    return p


def test_ask_streams_the_answer(tiny_model: Path, image: Path) -> None:
    out = run_cli("ask", "--model", str(tiny_model), "--image", str(image), "--max-new-tokens", "8", "What is this?")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


def test_ask_json_has_text_and_figures(tiny_model: Path, image: Path) -> None:
    out = run_cli("ask", "--model", str(tiny_model), "--image", str(image), "--max-new-tokens", "8", "--json",
                  "--backend", "genai", "--device", "CPU", "What is this?")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["text"] and data["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 8 and data["usage"]["prompt_tokens"] > 20
    assert data["timings"]["ttft_ms"] > 0 and data["timings"]["tokens_per_s"] > 0
    assert data["placement"]["language_device"] == "CPU"


def test_ask_same_answer_from_both_backends(tiny_model: Path, image: Path, exact_precision_config: Path) -> None:
    # The user config pins f32 compute and KV cache: the CPU plugin's per-processor defaults flip a
    # near-tied greedy token of the random model on AVX-512/AMX hosts.
    texts = []
    for backend in ("genai", "optimum"):
        out = run_cli("ask", "--model", str(tiny_model), "--image", str(image), "--max-new-tokens", "10", "--json",
                      "--backend", backend, "What is this?")
        assert out.returncode == 0, out.stderr
        texts.append(json.loads(out.stdout)["text"])
    assert texts[0] == texts[1]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("not-an-image", "is not a PNG, JPEG, WebP or BMP image"),
        ("truncated", "is damaged or truncated"),
        ("missing", "no image file at"),
    ],
)
def test_bad_images_are_clear_errors(tiny_model: Path, tmp_path: Path, setup: str, expected: str) -> None:
    p = tmp_path / "img.png"
    if setup == "not-an-image":
        p.write_text("hello, I am text")
    elif setup == "truncated":
        Image.new("RGB", (300, 300), (1, 2, 3)).save(p)
        p.write_bytes(p.read_bytes()[: 200])
    out = run_cli("ask", "--model", str(tiny_model), "--image", str(p), "What?")
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_model_folder(tmp_path: Path, image: Path) -> None:
    out = run_cli("ask", "--model", str(tmp_path / "nope"), "--image", str(image), "What?")
    assert out.returncode == 2
    assert "no model folder at" in out.stderr and "qwen-tray model pull" in out.stderr
    assert "Traceback" not in out.stderr


def test_incomplete_model_folder(tmp_path: Path, image: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    out = run_cli("ask", "--model", str(tmp_path / "m"), "What?")
    assert out.returncode == 2 and "is not a complete OpenVINO export" in out.stderr


def test_empty_question(tiny_model: Path) -> None:
    out = run_cli("ask", "--model", str(tiny_model), "   ")
    assert out.returncode == 2 and "the question is empty" in out.stderr


def test_bad_option_values(tiny_model: Path) -> None:
    out = run_cli("ask", "--model", str(tiny_model), "--top-p", "2", "hi")
    assert out.returncode == 2 and "--top-p must be in (0, 1]" in out.stderr
    out = run_cli("ask", "--model", str(tiny_model), "--device", "TPU", "hi")
    assert out.returncode == 2 and "invalid choice" in out.stderr
