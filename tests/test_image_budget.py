"""The image token budget: big screenshots shrink to fit, small ones stay as they are."""

from __future__ import annotations

import pytest
from PIL import Image

from daemon.engine.image_budget import budget_for, budget_size, fit_image, image_tokens


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
