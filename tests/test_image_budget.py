"""The image token budget: big screenshots shrink to fit, small ones stay as they are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from qwen_tray.engine.image_budget import budget_for, budget_size, fit_image, image_tokens


@pytest.mark.parametrize("budget", [64, 256, 1000, 1280, 2000])
def test_4k_screenshot_fits_budget_with_aspect_kept(budget: int) -> None:
    img = Image.new("RGB", (3840, 2160), (10, 20, 30))
    out = fit_image(img, budget)
    w, h = out.size
    assert w % 32 == 0 and h % 32 == 0
    assert (w // 32) * (h // 32) <= budget
    assert image_tokens(w, h) <= budget
    assert abs(w / h - 16 / 9) < 0.1 * 16 / 9
    assert (w // 32) * (h // 32) > 0.8 * budget  # not needlessly small


def test_small_image_is_not_upscaled() -> None:
    img = Image.new("RGB", (200, 100))
    assert fit_image(img, 1000) is img
    assert budget_size(200, 100, 1000) == (200, 100)


def test_extreme_aspect_still_fits() -> None:
    w, h = budget_size(20000, 40, 100)
    assert w % 32 == 0 and h % 32 == 0 and (w // 32) * (h // 32) <= 100


def test_non_rgb_is_converted() -> None:
    assert fit_image(Image.new("RGBA", (64, 64)), 100).mode == "RGB"


def test_budget_on_npu_is_what_the_text_leaves() -> None:
    assert budget_for(True, 0, 1280, 1024, text_tokens=100, n_images=1) == 1024 - 100 - 32
    assert budget_for(True, 0, 1280, 1024, text_tokens=100, n_images=2) == (1024 - 100 - 64) // 2
    assert budget_for(False, 0, 1280, 1024, text_tokens=100, n_images=1) == 1280
    assert budget_for(True, 500, 1280, 1024, text_tokens=100, n_images=1) == 500  # configured wins
    assert budget_for(True, 0, 1280, 1024, text_tokens=5000, n_images=1) == 4  # never zero


def test_1080p_on_npu_fits_max_prompt_len() -> None:
    per_image = budget_for(True, 0, 1280, 1024, text_tokens=30, n_images=1)
    w, h = budget_size(1920, 1080, per_image)
    assert image_tokens(w, h) + 30 + 32 <= 1024


@pytest.mark.parametrize("size", [(1, 1), (32, 32), (34, 34), (47, 40)])
def test_a_single_token_image_becomes_two_by_two(size: tuple[int, int]) -> None:
    out = fit_image(Image.new("RGB", size, (200, 0, 0)), 4)
    assert out.size == (64, 64) and image_tokens(*out.size) == 4
    assert out.getpixel((10, 10)) == (200, 0, 0)


def test_a_one_token_first_image_then_a_larger_one_does_not_kill_the_process(tiny_model: Path) -> None:
    """Without fit_image's floor this conversation aborts the process inside VLMPipeline (heap corruption)."""
    code = f"""
import threading
from PIL import Image
from qwen_tray.engine.base import GenerationOptions, Message
from qwen_tray.engine.image_budget import fit_image
from qwen_tray.engine.loader import load_engine
e = load_engine({str(tiny_model)!r}, "genai", "CPU")
imgs = [fit_image(Image.new("RGB", s, (200, 0, 0)), 1280) for s in ((34, 34), (342, 78))]
msgs = [Message("user", "What?", [imgs[0]]), Message("assistant", "ok"), Message("user", "And?", [imgs[1]])]
r = e.generate(msgs, GenerationOptions(max_new_tokens=4), lambda c: None, threading.Event())
print("answered", r.figures.completion_tokens)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "answered" in out.stdout
