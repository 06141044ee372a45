"""The prompt budget (qwen_tray.budget) on its own: limits, the order in which a conversation gives way, the
admission check. The engine here is a thin stand-in (placement, a word-count tokenizer, a model folder with
a config.json); the same rules on the real tiny model over every API are in test_budget_paths.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from qwen_tray.budget import (
    IMAGE_OVERHEAD_TOKENS,
    MESSAGE_OVERHEAD_TOKENS,
    PROMPT_OVERHEAD_TOKENS,
    UNBOUNDED,
    BudgetSettings,
    PromptBudget,
    TooLarge,
    VisionGrid,
    model_limits,
    prompt_limit,
)
from qwen_tray.engine.base import Message
from qwen_tray.engine.image_budget import budget_size, image_tokens

TINY_OV = Path(__file__).resolve().parent / "fixtures" / "tiny-qwen3-vl-ov"


@dataclass
class _Placement:
    language_device: str = "CPU"


@dataclass
class WordEngine:
    """What `fit` needs of an engine: placement, a tokenizer (one token per word here), the model folder."""

    model_dir: str
    placement: _Placement = field(default_factory=_Placement)

    def count_text_tokens(self, text: str) -> int:
        return len(text.split())


def model(tmp_path: Path, context: int, preprocessor: dict | None = None) -> str:
    d = tmp_path / f"model-{context}"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": context}}))
    if preprocessor is not None:
        (d / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return str(d)


def words(n: int, w: str = "w") -> str:
    return " ".join([w] * n)


def shot(w: int = 640, h: int = 480) -> Image.Image:
    return Image.new("RGB", (w, h), (200, 10, 10))


def test_the_limit_is_the_context_less_the_answer_and_on_the_npu_its_prompt() -> None:
    assert prompt_limit(4096, "CPU", 1024, 512) == 4096 - 512
    assert prompt_limit(4096, "GPU", 1024, 100_000) == 4096 - 1024  # the answer's room: a quarter at most
    assert prompt_limit(4096, "NPU", 1024, 512) == 1024
    assert prompt_limit(800, "NPU", 1024, 100) == 700  # a context smaller than the NPU's prompt
    assert prompt_limit(4096, "remote", 1024, 512) == UNBOUNDED


def test_the_tiny_models_limits_come_from_its_own_files() -> None:
    limits = model_limits(str(TINY_OV))
    assert limits.context_tokens == 4096
    assert limits.grid == VisionGrid(32, 1024, 65536)
    # What VLMPipeline counted for these sizes on the tiny model (its preprocessor caps an image at 65536 px):
    assert [limits.grid.tokens(*s) for s in ((640, 480), (300, 90), (33, 20), (64, 64))] == [54, 27, 1, 4]
    assert model_limits("http://127.0.0.1:9/v1").context_tokens == UNBOUNDED  # a remote server: no folder


def test_a_conversation_that_fits_is_left_alone(tmp_path: Path) -> None:
    engine = WordEngine(model(tmp_path, 4096))
    msgs = [Message("user", "what is this", [shot()]), Message("assistant", words(50)), Message("user", "and?")]
    fitted = PromptBudget().fit(msgs, engine, 100)
    assert fitted.trimmed is None
    assert [m.text for m in fitted.messages] == [m.text for m in msgs]
    assert fitted.messages[0].images[0].size == (640, 480)  # within the default 1280 tokens: untouched
    assert msgs[0].images[0].size == (640, 480)  # the caller's messages are never changed


def test_older_images_shrink_then_go_then_older_turns_and_the_newest_question_stays(tmp_path: Path) -> None:
    engine = WordEngine(model(tmp_path, 4000))  # no preprocessor limits: a 640x480 image is 300 tokens
    budget = PromptBudget()
    turns = [Message("system", "be brief")]
    for i in range(4):
        turns += [Message("user", f"q{i}", [shot()]), Message("assistant", words(100))]
    turns.append(Message("user", "the newest question", [shot()]))
    limit = 4000 - 200  # max_new_tokens 200

    def fit_at(context_left: int):
        eng = WordEngine(model(tmp_path, context_left + 200))
        return budget.fit(turns, eng, 200)

    # Fits: nothing trimmed. 4 older images (302 each), the newest (302), texts.
    whole = budget.fit(turns, engine, 200)
    assert whole.trimmed is None and whole.prompt_tokens <= limit
    # A little less room: the oldest image shrinks first (and only it).
    f = fit_at(whole.prompt_tokens - 50)
    assert f.trimmed is not None and f.trimmed.shrunk_images == ((1, 0),)
    assert not f.trimmed.dropped_images and not f.trimmed.dropped_messages
    w, h = f.messages[1].images[0].size
    assert image_tokens(w, h) < 300 and f.messages[3].images[0].size == (640, 480)
    # Less again: older images go, oldest first, before any text.
    f = fit_at(whole.prompt_tokens - 1000)
    assert f.trimmed.dropped_images[:1] == ((1, 0),) and not f.trimmed.dropped_messages
    assert f.messages[1].images == [] and f.messages[1].text == "q0"
    # Less again: every older image is gone, then the oldest turns (a question with its answer).
    f = fit_at(whole.prompt_tokens - 1300)
    assert f.trimmed.dropped_messages[:2] == (1, 2)
    assert all(not m.images for m in f.messages[:-1])
    for fitted in (f, fit_at(400)):
        assert fitted.prompt_tokens <= fitted.trimmed.prompt_limit
        assert fitted.messages[0] == turns[0]  # the system message stays
        last = fitted.messages[-1]
        assert last.text == "the newest question" and len(last.images) == 1  # never dropped
        assert "left out" in fitted.trimmed.summary()


def test_the_newest_image_shares_what_the_text_leaves_and_a_configured_budget_cannot_overflow(
        tmp_path: Path) -> None:
    npu = WordEngine(model(tmp_path, 32768), _Placement("NPU"))
    for configured in (0, 5000):
        budget = PromptBudget(BudgetSettings(npu_max_prompt_len=1024, image_max_tokens=configured))
        fitted = budget.fit([Message("user", words(100), [shot(1920, 1080)])], npu, 200)
        (img,) = fitted.messages[0].images
        fixed = PROMPT_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS + 100 + IMAGE_OVERHEAD_TOKENS
        assert image_tokens(*img.size) <= 1024 - fixed
        assert image_tokens(*img.size) > 0.9 * (1024 - fixed)  # not needlessly small
        assert fitted.trimmed is None  # sizing the newest image is not trimming
    # Two images share it; on the CPU the per-image default applies.
    two = PromptBudget().fit([Message("user", "q", [shot(1920, 1080), shot(1920, 1080)])], npu, 200).messages[0]
    assert sum(image_tokens(*i.size) for i in two.images) <= 1024 - 30
    cpu = WordEngine(npu.model_dir)
    (img,) = PromptBudget().fit([Message("user", "q", [shot(3840, 2160)])], cpu, 200).messages[0].images
    assert img.size == budget_size(3840, 2160, 1280)


def test_a_question_that_cannot_fit_alone_is_refused(tmp_path: Path) -> None:
    npu = WordEngine(model(tmp_path, 4096), _Placement("NPU"))
    budget = PromptBudget(BudgetSettings(npu_max_prompt_len=300))
    history = [Message("user", words(1000), [shot()]), Message("assistant", words(1000))]
    ok = budget.fit([*history, Message("user", words(200), [shot()])], npu, 50)  # the history goes
    assert ok.trimmed.dropped_messages == (0, 1) and ok.prompt_tokens <= 300
    with pytest.raises(TooLarge, match="NPU's prompt limit"):
        budget.fit([*history, Message("user", words(290), [shot()])], npu, 50)
    with pytest.raises(TooLarge, match="shorten it"):
        budget.fit([Message("system", words(200)), Message("user", words(100))], npu, 50)


def test_admission_refuses_only_what_trimming_cannot_help(tmp_path: Path) -> None:
    counted: list[str] = []
    budget = PromptBudget(BudgetSettings(npu_max_prompt_len=300), model(tmp_path, 4096),
                          placement=lambda: {"language_device": "NPU"})
    budget.count_tokens = lambda text: counted.append(text) or len(text.split())  # type: ignore[method-assign]
    long_history = [("user", words(5000), 1), ("assistant", words(5000), 0)]
    budget.check([*long_history, ("user", "short question", 1)], 100)  # older turns will be left out
    assert counted == []  # small enough by its size alone: nothing tokenized
    budget.check([("user", words(250, "ab"), 1)], 100)  # in doubt: tokenized, and it fits
    assert counted
    with pytest.raises(TooLarge, match="more than the 300 tokens allowed"):
        budget.check([*long_history, ("user", words(290, "ab"), 1)], 100)
    with pytest.raises(TooLarge, match="bytes"):  # far over: refused by its size, not tokenized
        counted.clear()
        budget.check([("user", "x" * 100_000, 0)], 100)
    assert counted == []
    # No model folder (a remote server): no check at all.
    PromptBudget().check([("user", "x" * 100_000, 0)], 100)


def test_what_was_trimmed_reads_well() -> None:
    from qwen_tray.budget import Trimmed

    t = Trimmed((0, 1), ((2, 0),), ((4, 0), (6, 0)), 3584, "the model's context")
    assert t.summary() == "left out 2 older messages, 1 older image; shrank 2 older images"
    assert t.note() == ("To fit the model's context (3584 prompt tokens), qwen-tray left out 2 older messages, "
                        "1 older image; shrank 2 older images.")
    assert t.as_dict() == {"dropped_messages": [0, 1], "dropped_images": [[2, 0]],
                           "shrunk_images": [[4, 0], [6, 0]], "prompt_limit": 3584, "note": t.note()}
    assert Trimmed(shrunk_images=((0, 0),)).summary() == "shrank 1 older image"


def test_a_huge_history_costs_the_worker_no_tokenizing(tmp_path: Path) -> None:
    """Older text that will be left out anyway is not tokenized (a local client may send megabytes)."""
    counted: list[int] = []

    class Counting(WordEngine):
        def count_text_tokens(self, text: str) -> int:
            counted.append(len(text))
            return super().count_text_tokens(text)

    engine = Counting(model(tmp_path, 4096))
    huge = "word " * 2_000_000  # 10 MB
    msgs = [Message("user", huge), Message("assistant", huge), Message("user", words(1000)),
            Message("assistant", words(3000)), Message("user", "and now?")]
    fitted = PromptBudget().fit(msgs, engine, 100)
    assert max(counted) < 100_000  # only the newer messages were tokenized
    assert fitted.trimmed is not None and fitted.trimmed.dropped_messages == (0, 1, 2, 3)
    assert [m.text for m in fitted.messages] == ["and now?"]
