"""Scale an image so its vision tokens fit a number of tokens before it reaches the model.

How many tokens an image may have is `qwen_tray.budget`'s decision; this is the pixel arithmetic.
Qwen3-VL spends one token per 32x32 pixels (patch 16, merge 2). VLMPipeline only
reads size limits from preprocessor_config.json, so to keep a 4K screenshot
within the NPU's prompt (MAX_PROMPT_LEN) we resize here: aspect kept, sides
multiples of 32, never upscaled, except that an image of a single vision token
becomes 2x2 tokens (see `MIN_TOKEN_SIDE`).
"""

from __future__ import annotations

import math

from PIL import Image

PIXELS_PER_TOKEN_SIDE = 32
# openvino.genai 2026.4's VLMPipeline corrupts its heap (the process aborts: "corrupted size vs. prev_size")
# when a conversation's first image is a single vision token (up to about 47x47 px) and a later image is
# larger. A request must never kill the daemon, so such an image is enlarged to 2x2 tokens (64x64 px),
# which the budget's floor of 4 tokens always allows. Checked by tests/test_image_budget.py in a child process.
MIN_TOKEN_SIDE = 2


def image_tokens(width: int, height: int) -> int:
    """Vision tokens for an image of this size (after rounding to the 32-px grid)."""
    s = PIXELS_PER_TOKEN_SIDE
    return max(1, round(width / s)) * max(1, round(height / s))


def budget_size(width: int, height: int, max_tokens: int) -> tuple[int, int]:
    """The largest size with sides multiples of 32, the same aspect, and at most `max_tokens` tokens.

    Returns the input size unchanged when it already fits (no upscaling).
    """
    if width < 1 or height < 1:
        raise ValueError("image has no pixels")
    s = PIXELS_PER_TOKEN_SIDE
    max_tokens = max(1, max_tokens)
    if image_tokens(width, height) <= max_tokens:
        return width, height
    scale = math.sqrt(max_tokens * s * s / (width * height))
    cols = max(1, math.floor(width * scale / s))
    rows = max(1, math.floor(height * scale / s))
    while cols * rows > max_tokens:  # floor already fits in practice; this guards extreme aspects
        if cols >= rows:
            cols -= 1
        else:
            rows -= 1
    return cols * s, rows * s


def fit_image(image: Image.Image, max_tokens: int) -> Image.Image:
    """Return `image` (RGB) resized to fit `max_tokens`, or the same image if it fits."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image_tokens(image.width, image.height) == 1:
        side = MIN_TOKEN_SIDE * PIXELS_PER_TOKEN_SIDE
        return image.resize((side, side), Image.Resampling.BICUBIC)
    size = budget_size(image.width, image.height, max_tokens)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
