"""The prompt budget: how many tokens a request may use and how a conversation is made to fit. One owner.

Every path (the popup, ZeroMQ, HTTP, in-process `ask`) asks this module and nothing else:

- `prompt_limit`: the prompt tokens allowed. The model's context (its config.json) less room for the
  answer (`max_new_tokens`, at most a quarter of the context); where the language model runs on the NPU,
  also at most `npu.max_prompt_len` (the NPU's static prompt; its answer room is MIN_RESPONSE_LEN).
- `PromptBudget.check`: the admission check of the APIs, before images are decoded: the part of a request
  that is never trimmed (system messages and the newest question) must fit, else `TooLarge`. Text far over
  the limit is refused by its size without tokenizing it (a token is at most MAX_BYTES_PER_TOKEN bytes for
  this purpose; a token is always at least one byte).
- `PromptBudget.fit`: on the scheduler's worker, with the engine's placement and tokenizer. Every image is
  scaled to its per-image budget; then, while the conversation is over the limit, older turns give way,
  oldest first: older images shrink (to a quarter of their tokens at most), then older images are left
  out, then older turns' text (a user message with the replies after it). System messages and the newest
  question (with its images; they only shrink, on the NPU, to what its text leaves) always stay. What was
  left out is reported (`Trimmed`) in the terminal event of every API, the popup and `ask`.

Token counts are estimates that err high: each message's text is counted alone plus a fixed overhead for
the chat template's role markers, and each image costs its vision tokens as the model's own preprocessor
(preprocessor_config.json: patch and merge size, min and max pixels) will see it, plus its start/end markers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine.base import Message
from .engine.image_budget import budget_size, fit_image, image_tokens

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_TOKENS = 32768  # a model whose config.json does not say
UNBOUNDED = 1 << 62  # a remote server measures its own context
MAX_BYTES_PER_TOKEN = 8  # text more than 8 bytes per allowed token is refused without tokenizing it
MESSAGE_OVERHEAD_TOKENS = 8  # <|im_start|>role\n ... <|im_end|>\n, with a margin for tokenizer boundaries
PROMPT_OVERHEAD_TOKENS = 8  # the generation prompt: <|im_start|>assistant\n
IMAGE_OVERHEAD_TOKENS = 2  # <|vision_start|> ... <|vision_end|>
MIN_IMAGE_TOKENS = 4  # the smallest an image gets (fit_image raises a one-token image to 2x2)
SHRINK_TO = 4  # an older image shrinks to no less than 1/SHRINK_TO of its tokens before it is left out
ANSWER_SHARE = 4  # room kept for the answer: max_new_tokens, at most 1/ANSWER_SHARE of the context


class TooLarge(Exception):
    """Even with every older turn left out the request does not fit; the message says what to change."""


@dataclass(frozen=True)
class VisionGrid:
    """How the model's image preprocessor sizes an image (Qwen2-VL's `smart_resize`)."""

    factor: int = 32  # patch size x merge size: one vision token per factor x factor pixels
    min_pixels: int = 0
    max_pixels: int = 0  # 0 = no limit

    def tokens(self, width: int, height: int) -> int:
        f = self.factor
        h, w = max(f, round(height / f) * f), max(f, round(width / f) * f)
        if self.max_pixels and h * w > self.max_pixels:
            beta = math.sqrt(height * width / self.max_pixels)
            h, w = max(f, math.floor(height / beta / f) * f), max(f, math.floor(width / beta / f) * f)
        elif self.min_pixels and h * w < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (height * width))
            h, w = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
        return (h // f) * (w // f)


@dataclass(frozen=True)
class ModelLimits:
    context_tokens: int = DEFAULT_CONTEXT_TOKENS
    grid: VisionGrid = VisionGrid()


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _positive(*values: Any) -> int:
    return next((v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0), 0)


@functools.lru_cache(maxsize=8)
def model_limits(model_dir: str) -> ModelLimits:
    """The context length (config.json: text_config.max_position_embeddings) and the vision grid
    (preprocessor_config.json) of a model folder; a folder that is not there (a remote URL) is unbounded."""
    folder = Path(model_dir)
    if not model_dir or not folder.is_dir():
        return ModelLimits(UNBOUNDED)
    cfg = _json(folder / "config.json")
    context = _positive((cfg.get("text_config") or {}).get("max_position_embeddings"),
                        cfg.get("max_position_embeddings")) or DEFAULT_CONTEXT_TOKENS
    pre = _json(folder / "preprocessor_config.json")
    size = pre.get("size") if isinstance(pre.get("size"), dict) else {}
    factor = (_positive(pre.get("patch_size")) or 16) * (_positive(pre.get("merge_size")) or 2)
    grid = VisionGrid(factor, _positive(pre.get("min_pixels"), size.get("shortest_edge")),
                      _positive(pre.get("max_pixels"), size.get("longest_edge")))
    return ModelLimits(context, grid)


def prompt_limit(context_tokens: int, language_device: str | None, npu_max_prompt_len: int,
                 max_new_tokens: int) -> int:
    """Prompt tokens allowed: the context less the answer's room; on the NPU also its static prompt size."""
    if context_tokens >= UNBOUNDED or language_device == "remote":
        return UNBOUNDED
    limit = context_tokens - min(max(0, max_new_tokens), context_tokens // ANSWER_SHARE)
    if language_device == "NPU":
        limit = min(limit, npu_max_prompt_len)
    return limit


@dataclass(frozen=True)
class Trimmed:
    """What `fit` left out of a conversation (indices into the request's messages; images as
    (message, image) pairs), and the limit it fitted. Reported to the user by every API."""

    dropped_messages: tuple[int, ...] = ()
    dropped_images: tuple[tuple[int, int], ...] = ()
    shrunk_images: tuple[tuple[int, int], ...] = ()
    prompt_limit: int = 0
    why: str = "the model's context"  # or "the NPU's prompt limit"

    def summary(self) -> str:
        """A short phrase for a status line, e.g. 'left out 2 older messages, 1 older image'."""
        parts = []
        if self.dropped_messages:
            parts.append(_plural(len(self.dropped_messages), "older message"))
        if self.dropped_images:
            parts.append(_plural(len(self.dropped_images), "older image"))
        out = f"left out {', '.join(parts)}" if parts else ""
        if self.shrunk_images:
            shrunk = f"shrank {_plural(len(self.shrunk_images), 'older image')}"
            out = f"{out}; {shrunk}" if out else shrunk
        return out

    def note(self) -> str:
        """A sentence for a person: what was trimmed and why."""
        return f"To fit {self.why} ({self.prompt_limit} prompt tokens), qwen-tray {self.summary()}."

    def as_dict(self) -> dict[str, Any]:
        return {"dropped_messages": list(self.dropped_messages),
                "dropped_images": [list(p) for p in self.dropped_images],
                "shrunk_images": [list(p) for p in self.shrunk_images],
                "prompt_limit": self.prompt_limit, "note": self.note()}


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


@dataclass
class Fitted:
    messages: list[Message]
    trimmed: Trimmed | None
    prompt_tokens: int  # the estimate (an upper bound) of the fitted conversation's prompt


@dataclass(frozen=True)
class BudgetSettings:
    """The config values the budget depends on (kept separate so tests need no Config)."""

    npu_max_prompt_len: int = 1024
    image_max_tokens: int = 0  # 0 = `image_default_tokens`
    image_default_tokens: int = 1280


class _Img:
    """One image of the conversation while fitting: where it is, its token cap and cost."""

    def __init__(self, m: int, k: int, image: Image.Image, cap: int, grid: VisionGrid) -> None:
        self.m, self.k, self.image, self.grid = m, k, image, grid
        self.cap = max(MIN_IMAGE_TOKENS, cap)
        self.full = self.tokens = self._cost(self.cap)
        self.dropped = False

    def _cost(self, cap: int) -> int:
        """Tokens once `fit_image(image, cap)` has scaled it and the model's preprocessor has seen it."""
        w, h = self.image.size
        size = (64, 64) if image_tokens(w, h) == 1 else budget_size(w, h, cap)
        return self.grid.tokens(*size) + IMAGE_OVERHEAD_TOKENS

    def shrink(self, tokens: int) -> int:
        """Shrink to at most `tokens` vision tokens; returns the tokens saved."""
        cost = self._cost(max(MIN_IMAGE_TOKENS, tokens))
        saved = self.tokens - cost
        if saved > 0:
            self.cap, self.tokens = max(MIN_IMAGE_TOKENS, tokens), cost
        return max(0, saved)


class PromptBudget:
    """The one owner of the prompt budget. `model_dir` None: the engine's own folder is used (tests);
    `placement()` gives the loaded placement's dict (for `check`, which runs off the worker)."""

    def __init__(self, settings: BudgetSettings = BudgetSettings(), model_dir: str | Path | None = None, *,
                 placement: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self.settings = settings
        self.model_dir = str(model_dir) if model_dir is not None else None
        self._placement = placement
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: Any, model_dir: str | Path | None, **kw: Any) -> PromptBudget:
        return cls(BudgetSettings(cfg.npu.max_prompt_len, cfg.image.max_tokens, cfg.image.default_tokens),
                   model_dir, **kw)

    # ------------------------------------------------------------ limits

    def limits(self, model_dir: str | None = None) -> ModelLimits:
        return model_limits(self.model_dir if self.model_dir is not None else (model_dir or ""))

    def prompt_limit(self, language_device: str | None, max_new_tokens: int, model_dir: str | None = None) -> int:
        return prompt_limit(self.limits(model_dir).context_tokens, language_device,
                            self.settings.npu_max_prompt_len, max_new_tokens)

    def _why(self, language_device: str | None, limit: int, model_dir: str | None = None) -> str:
        if language_device == "NPU" and limit == self.settings.npu_max_prompt_len:
            return "the NPU's prompt limit"
        return f"the model's context of {self.limits(model_dir).context_tokens} tokens with room for the answer"

    # ------------------------------------------------------------ counting (the budget's own tokenizer)

    def load_tokenizer(self) -> Any:
        """A tokenizer of our own for `check` (the engine may be busy, unloaded or loading); loaded with the
        model, on the scheduler's worker."""
        with self._tokenizer_lock:
            if self._tokenizer is None:
                import openvino_genai as ov_genai

                self._tokenizer = ov_genai.Tokenizer(str(self.model_dir))
            return self._tokenizer

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` (off the IPC server's socket thread: on its check executor, or HTTP's)."""
        tokenizer = self.load_tokenizer()
        with self._tokenizer_lock:  # one encode at a time: the executors have more than one thread
            return int(tokenizer.encode(text).input_ids.get_shape()[1])

    # ------------------------------------------------------------ admission (before images are decoded)

    def check(self, messages: Sequence[tuple[str, str, int]], max_new_tokens: int) -> None:
        """Refuse (`TooLarge`) a request whose untrimmable part cannot fit: `messages` are (role, text,
        number of images). Tokenizes only when the size alone cannot decide."""
        if self.model_dir is None:
            return
        placement = self._placement() if self._placement is not None else None
        device = (placement or {}).get("language_device")
        limit = self.prompt_limit(device, max_new_tokens)
        if limit >= UNBOUNDED:
            return
        newest = _newest_question(messages)
        kept = [m for i, m in enumerate(messages) if m[0] == "system" or i >= newest]
        fixed = (PROMPT_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS * len(kept)
                 + sum(n for _, _, n in kept) * (MIN_IMAGE_TOKENS + IMAGE_OVERHEAD_TOKENS))
        nbytes = sum(len(t.encode("utf-8")) for _, t, _ in kept)
        if nbytes + fixed <= limit:  # a token is at least one byte
            return
        tokens = None
        if nbytes <= MAX_BYTES_PER_TOKEN * limit:
            tokens = sum(self.count_tokens(t) for _, t, _ in kept) + fixed
            if tokens <= limit:
                return
        raise TooLarge(self._too_large(tokens, nbytes, limit, device, kept))

    def _too_large(self, tokens: int | None, nbytes: int, limit: int, device: str | None,
                   kept: Sequence[tuple[str, str, int]], model_dir: str | None = None) -> str:
        """`tokens`: the prompt the kept part alone would take (None: not tokenized, `nbytes` of text)."""
        many = len(kept) > 1
        what = "the question and the system messages" if many else "the question"
        images = " with its images at their smallest" if any(n for _, _, n in kept) else ""
        size = (f"take{'' if many else 's'} {tokens} prompt tokens{images}" if tokens is not None
                else f"{'are' if many else 'is'} {nbytes} bytes of text")
        return (f"{what} {size}, more than the {limit} tokens allowed by {self._why(device, limit, model_dir)}: "
                "shorten it (older turns are left out on their own, the question itself is not)")

    # ------------------------------------------------------------ fitting (on the scheduler's worker)

    def fit(self, messages: Sequence[Message], engine: Any, max_new_tokens: int) -> Fitted:
        """The conversation as the engine should get it: images scaled, older turns trimmed to the limit.

        `engine` gives `placement.language_device`, `count_text_tokens` and `model_dir`. Raises TooLarge
        when even the newest question alone does not fit.
        """
        device = engine.placement.language_device
        model_dir = str(engine.model_dir)
        limits = self.limits(model_dir)
        limit = self.prompt_limit(device, max_new_tokens, model_dir)
        s = self.settings
        cap = s.image_max_tokens if s.image_max_tokens > 0 else s.image_default_tokens
        if limit >= UNBOUNDED:  # a remote server: only the per-image budget applies
            caps = {(i, k): cap for i, m in enumerate(messages) for k in range(len(m.images))}
            return Fitted(_resized(messages, caps, set()), None, 0)
        newest = _newest_question(messages)
        kept = [i for i, m in enumerate(messages) if m.role == "system" or i >= newest]
        text = _text_tokens(messages, kept, engine.count_text_tokens, limit)
        fixed = PROMPT_OVERHEAD_TOKENS + sum(text[i] for i in kept)
        # The newest question's images share what its text leaves (the NPU's old rule, now everywhere).
        new_imgs = [(i, k) for i in range(newest, len(messages)) for k in range(len(messages[i].images))]
        cap_new = cap
        if new_imgs:
            share = (limit - fixed) // len(new_imgs) - IMAGE_OVERHEAD_TOKENS
            cap_new = min(cap, share)
            smallest = fixed + len(new_imgs) * (MIN_IMAGE_TOKENS + IMAGE_OVERHEAD_TOKENS)
            if smallest > limit:
                raise TooLarge(self._too_large(smallest, 0, limit, device,
                                               [(messages[i].role, "", len(messages[i].images)) for i in kept],
                                               model_dir))
        elif fixed > limit:
            raise TooLarge(self._too_large(fixed, 0, limit, device,
                                           [(messages[i].role, "", 0) for i in kept], model_dir))
        images = [_Img(i, k, im, cap_new if i >= newest else cap, limits.grid)
                  for i, m in enumerate(messages) for k, im in enumerate(m.images)]
        older_imgs = [im for im in images if im.m < newest and messages[im.m].role != "system"]
        turns = _older_turns(messages, newest)
        dropped_msgs: set[int] = set()
        total = fixed + sum(im.tokens for im in images) + sum(text[i] for t in turns for i in t)
        excess = total - limit
        for im in older_imgs:  # 1. older images shrink, oldest first
            if excess <= 0:
                break
            excess -= im.shrink(max(im.full // SHRINK_TO, im.tokens - IMAGE_OVERHEAD_TOKENS - excess))
        for im in older_imgs:  # 2. older images are left out, oldest first
            if excess <= 0:
                break
            im.dropped, excess = True, excess - im.tokens
        for turn in turns:  # 3. older turns are left out, oldest first
            if excess <= 0:
                break
            dropped_msgs.update(turn)
            excess -= sum(text[i] for i in turn)
        if excess > 0:  # cannot happen: what is left is what `fixed` and the newest images' share allowed
            raise TooLarge(f"the conversation does not fit {limit} prompt tokens")
        trimmed = None
        gone = [(im.m, im.k) for im in older_imgs if im.dropped and im.m not in dropped_msgs]
        shrunk = [(im.m, im.k) for im in older_imgs if not im.dropped and im.m not in dropped_msgs
                  and im.tokens < im.full]
        if dropped_msgs or gone or shrunk:
            trimmed = Trimmed(tuple(sorted(dropped_msgs)), tuple(gone), tuple(shrunk), limit,
                              self._why(device, limit, model_dir))
            log.info("conversation trimmed to %d prompt tokens: %s", limit, trimmed.summary())
        caps = {(im.m, im.k): im.cap for im in images if not im.dropped}
        fitted = _resized(messages, caps, dropped_msgs)
        return Fitted(fitted, trimmed, limit + excess)

    def fit_question(self, question: str, images: Sequence[Image.Image], engine: Any,
                     max_new_tokens: int) -> list[Message]:
        """One question (in-process `ask`): its images sized to what the budget allows."""
        return self.fit([Message("user", question, list(images))], engine, max_new_tokens).messages


def _newest_question(messages: Sequence[Any]) -> int:
    """Index of the last user message (the newest question); everything from it on is kept."""
    roles = [m[0] if isinstance(m, tuple) else m.role for m in messages]
    return max((i for i, r in enumerate(roles) if r == "user"), default=0)


def _text_tokens(messages: Sequence[Message], kept: list[int], count: Callable[[str], int],
                 limit: int) -> list[int]:
    """Each message's text tokens plus its template overhead. An older message that will be left out anyway
    (the newer older ones already fill the limit, or it alone is far over it) costs its UTF-8 size instead:
    an upper bound (a token is at least a byte) that needs no tokenizer, so a huge history costs the worker
    no time."""
    out = [0] * len(messages)
    seen = 0
    for i in reversed(range(len(messages))):
        nbytes = len(messages[i].text.encode("utf-8"))
        far = i not in kept and (seen > limit or nbytes > MAX_BYTES_PER_TOKEN * limit)
        out[i] = (nbytes if far else count(messages[i].text)) + MESSAGE_OVERHEAD_TOKENS
        seen += out[i]
    return out


def _older_turns(messages: Sequence[Message], newest: int) -> list[list[int]]:
    """Messages before the newest question, grouped into turns (a user message and the replies after it);
    system messages are not part of any turn (they stay)."""
    turns: list[list[int]] = []
    for i in range(newest):
        role = messages[i].role
        if role == "system":
            continue
        if role == "user" or not turns:
            turns.append([i])
        else:
            turns[-1].append(i)
    return turns


def _resized(messages: Sequence[Message], caps: dict[tuple[int, int], int], dropped: set[int]) -> list[Message]:
    """The conversation without the dropped messages and images, each image scaled to its cap."""
    out = []
    for i, m in enumerate(messages):
        if i in dropped:
            continue
        imgs = [fit_image(im, caps[(i, k)]) for k, im in enumerate(m.images) if (i, k) in caps]
        out.append(dataclasses.replace(m, images=imgs))
    return out
