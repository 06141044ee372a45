"""Turn a list of chat messages into what each backend consumes.

Both backends see the same conversation: images sit at the start of the turn
they belong to, in order, so a follow-up question still sees the first image.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from .base import Message

_GENAI_TAG = re.compile(r"<ov_genai_image_(\d+)>")


def neutralise_tags(text: str) -> str:
    """Keep user text from smuggling image placeholders into the prompt."""
    return _GENAI_TAG.sub(lambda m: f"<ov_genai_image\u200b_{m.group(1)}>", text)


def genai_messages(messages: Sequence[Message]) -> tuple[list[dict[str, str]], list[Image.Image]]:
    """Messages with openvino.genai's universal image tags, and the images in tag order."""
    out: list[dict[str, str]] = []
    images: list[Image.Image] = []
    for m in messages:
        tags = ""
        for img in m.images:
            tags += f"<ov_genai_image_{len(images)}>"
            images.append(img)
        out.append({"role": m.role, "content": tags + neutralise_tags(m.text)})
    return out, images


def render_genai(tokenizer: Any, messages: Sequence[Message]) -> tuple[str, list[Image.Image]]:
    """The prompt text for genai (chat template, image tags) and its images.

    A conversation that ends with an assistant message continues that message (a
    background answer resumed after the popup preempted it): the template opens the
    assistant turn and the partial answer follows, unclosed.
    """
    chat, images = genai_messages(messages)
    if chat and chat[-1]["role"] == "assistant":
        partial = chat[-1]["content"]
        return tokenizer.apply_chat_template(chat[:-1], add_generation_prompt=True) + partial, images
    return tokenizer.apply_chat_template(chat, add_generation_prompt=True), images


def hf_messages(messages: Sequence[Message]) -> tuple[list[dict], list[Image.Image]]:
    """Messages in the Hugging Face processor's structured form, and the images in order."""
    out: list[dict] = []
    images: list[Image.Image] = []
    for m in messages:
        parts: list[dict] = []
        for img in m.images:
            parts.append({"type": "image"})
            images.append(img)
        parts.append({"type": "text", "text": m.text})
        out.append({"role": m.role, "content": parts})
    return out, images
