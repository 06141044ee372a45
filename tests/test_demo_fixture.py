"""The demo model is what its script makes: same untrained model and tokenizer, data that means what it says,
a training loop that learns, and a committed IR that passes the script's own checks on both backends.

Re-running the whole training (about ten minutes of CPU) is left to `python tests/fixtures/make_demo_model.py`,
which ends with the same `check_ir`; here a short run proves the loop still learns.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO_HF, DEMO_OV, FIXTURES

pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def script():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("make_demo_model", FIXTURES / "make_demo_model.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_demo_model"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_untrained_model_tokenizer_and_configs_rebuild_byte_identically(script, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "hf"
    script.build_untrained(out)
    def config(folder: Path) -> dict:
        cfg = json.loads((folder / "config.json").read_text())
        for sub in ("text_config", "vision_config"):
            cfg[sub].pop("dtype", None)  # written by save_pretrained after training (float32), not by the build
        return cfg

    assert config(out) == config(DEMO_HF)
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                 "chat_template.jinja"):
        assert (out / name).read_bytes() == (DEMO_HF / name).read_bytes(), name
    # Trained with a 128x128 image limit, served (HF folder and IR) with 256x256: see the script's docstring.
    cfgs = {p: json.loads((p / "preprocessor_config.json").read_text()) for p in (out, DEMO_HF, DEMO_OV)}
    limits = {p: (c["min_pixels"], c["max_pixels"]) for p, c in cfgs.items()}
    train = (script.TRAIN_MIN_PIXELS, script.TRAIN_MAX_PIXELS)
    serve = (script.SERVE_MIN_PIXELS, script.SERVE_MAX_PIXELS)
    assert limits == {out: train, DEMO_HF: serve, DEMO_OV: serve}


def test_synthetic_images_are_mostly_the_colour_they_are_labelled(script) -> None:  # noqa: ANN001
    rng = random.Random(5)
    names = list(script.COLOURS)
    protos = np.array([script.COLOURS[n][0] for n in names], dtype=np.float32)
    for _ in range(60):
        img, name = script.make_image(rng)
        px = np.asarray(img.convert("RGB"), dtype=np.float32).reshape(-1, 3)
        # Nearest colour class per pixel (over all of each class's prototypes), then the plurality.
        dists = np.stack([np.min([np.abs(px - np.array(p, np.float32)).sum(1) for p in script.COLOURS[n]], axis=0)
                          for n in names])
        counts = np.bincount(dists.argmin(0), minlength=len(names))
        assert names[int(counts.argmax())] == name and counts.max() / counts.sum() > 0.55, (name, counts)
    assert len(protos) >= 7 and {"red", "green", "blue", "yellow", "black", "white"} <= set(names)


def test_a_short_training_run_learns(script, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "hf"
    script.build_untrained(out)
    first, last = script.train(out, steps=40, batch_size=8, seed=3, log_every=1000)
    assert last < first / 3, (first, last)


def test_the_committed_demo_ir_passes_the_scripts_checks_on_both_backends(script) -> None:  # noqa: ANN001
    assert script.check_ir(DEMO_OV, verbose=False) == 1.0
