"""Build a real-size Qwen3-VL stand-in (published 4B or 2B shape, random weights) and export it int4.

Why: real Qwen3-VL weights cannot be downloaded here, but decode speed on CPU is
set by the bytes of weights read per token and the shapes of the matmuls, not by
the weight values, once the output length is forced (min = max new tokens). So a
model with the published configuration and random weights measures the same
workload. The export goes through the project's own `qwen_tray.engine.export`
(int4, symmetric, group 128, ratio 1.0), the same path `qwen-tray model` uses.

The result is cached outside the repository and rebuilt only when missing:

    python bench/make_standin.py --shape 4b          # -> ~/.cache/qwen-tray-bench/standin-4b/ir
    python bench/make_standin.py --shape 2b --print-path

Memory: the bf16 build peaks near 10.5 GB and the int4 export near 16 GB (4B);
each stage runs in its own child process so the second starts with the first's
memory returned. Needs the `export` extra (torch, torchvision, optimum-intel).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Published Qwen3-VL-Instruct configurations (text and vision towers).
SHAPES: dict[str, dict] = {
    "4b": {
        "text": dict(hidden_size=2560, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8,
                     intermediate_size=9728),
        "vision_out": 2560,
    },
    "2b": {
        "text": dict(hidden_size=2048, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                     intermediate_size=6144),
        "vision_out": 2048,
    },
}
VOCAB = 151936

# Qwen3-VL's own image limits (patch 16, merge 2 -> one token per 32x32 px): real screenshots keep their size.
MIN_PIXELS = 65536
MAX_PIXELS = 16384 * 32 * 32


def cache_root() -> Path:
    """Outside the repo: gigabytes of IR must never be committed."""
    base = os.environ.get("QWEN_TRAY_BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "qwen-tray-bench"
    )
    return Path(base)


def standin_dirs(shape: str) -> tuple[Path, Path]:
    """(Hugging Face folder, OpenVINO IR folder) for a shape."""
    root = cache_root() / f"standin-{shape}"
    return root / "hf", root / "ir"


def extend_tokenizer(folder: Path, size: int = VOCAB) -> None:
    """Grow the small trained BPE to `size` entries with letter-string tokens and the merges that make them.

    Why: random weights pick token ids all over the model's 151936-row vocabulary; with
    a 512-token tokenizer nearly every generated id would decode to nothing, so no text
    would stream and time to first token could not be seen from outside. With every id
    a real (ASCII) token, each generated token streams as text, as with Qwen's tokenizer.
    """
    import itertools
    import string

    from transformers import Qwen2TokenizerFast

    path = folder / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab: dict[str, int] = data["model"]["vocab"]
    merges: list = data["model"]["merges"]
    next_id = max(vocab.values()) + 1

    def add(token: str, left: str, right: str) -> bool:
        nonlocal next_id
        if token in vocab or left not in vocab or right not in vocab:
            return False
        vocab[token] = next_id
        merges.append([left, right])
        next_id += 1
        return next_id >= size

    letters = string.ascii_lowercase
    full = any(add("\u0120" + c, "\u0120", c) for c in letters)  # "Ġa": a space then a letter
    length = 2
    while not full:
        for combo in itertools.product(letters, repeat=length):
            word = "".join(combo)
            if add(word, word[:-1], word[-1]) or add("\u0120" + word, "\u0120" + word[:-1], word[-1]):
                full = True
                break
        length += 1
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    tok = Qwen2TokenizerFast.from_pretrained(folder)
    tok.save_pretrained(folder)  # rewrites vocab.json and merges.txt to match
    if len(tok) != size:
        raise RuntimeError(f"tokenizer has {len(tok)} entries, expected {size}")


def build_hf(shape: str, out: Path) -> None:
    """Write the published config with random bf16 weights, a small tokenizer and real image limits."""
    import torch
    from transformers import AutoProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
    from make_tiny_model import build_tokenizer, write_processor_configs  # the fixture's BPE with Qwen's special tokens

    spec = SHAPES[shape]
    stage = out.with_name(out.name + ".partial")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    ids = build_tokenizer(stage)  # the fixture's special-token ids, then grown to the model's vocabulary
    extend_tokenizer(stage)
    torch.manual_seed(0)
    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=VOCAB,
            head_dim=128,
            max_position_embeddings=262144,
            tie_word_embeddings=True,
            rope_theta=5_000_000.0,
            rope_scaling={"rope_type": "default", "mrope_section": [24, 20, 20], "mrope_interleaved": True},
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            **spec["text"],
        ),
        vision_config=dict(
            depth=24,
            hidden_size=1024,
            intermediate_size=4096,
            num_heads=16,
            out_hidden_size=spec["vision_out"],
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            num_position_embeddings=2304,
            deepstack_visual_indexes=[5, 11, 17],
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.set_default_dtype(torch.bfloat16)
    model = Qwen3VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    model.save_pretrained(stage, safe_serialization=True)
    del model
    write_processor_configs(stage, MIN_PIXELS, MAX_PIXELS, max_frames=768)
    AutoProcessor.from_pretrained(stage).save_pretrained(stage)
    shutil.rmtree(out, ignore_errors=True)
    stage.rename(out)


def export_ir(hf: Path, ir: Path) -> None:
    """int4, symmetric, group 128, ratio 1.0 through the project's export (NPU-ready settings)."""
    sys.path.insert(0, str(ROOT))
    from qwen_tray.engine.export import ExportOptions, export_model

    export_model(hf, ir, ExportOptions(weight_format="int4", sym=True, group_size=128, ratio=1.0))


def ensure_standin(shape: str, keep_hf: bool = False, log=print) -> Path:
    """Return the IR folder, building what is missing (each stage in a child process)."""
    hf, ir = standin_dirs(shape)
    if (ir / "openvino_language_model.xml").is_file():
        return ir
    for stage, done in (("hf", (hf / "config.json").is_file()), ("ir", False)):
        if done:
            continue
        t0 = time.perf_counter()
        log(f"building stand-in {shape}: stage {stage} ...")
        subprocess.run([sys.executable, __file__, "--shape", shape, "--stage", stage], check=True)
        log(f"stage {stage} done in {time.perf_counter() - t0:.0f} s")
    if not keep_hf:
        shutil.rmtree(hf, ignore_errors=True)  # ~8 GB of bf16 the benchmark never reads
    return ir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="4b")
    ap.add_argument("--stage", choices=("hf", "ir", "tokenizer"), help=argparse.SUPPRESS)
    ap.add_argument("--keep-hf", action="store_true", help="keep the bf16 Hugging Face folder after export")
    ap.add_argument("--print-path", action="store_true", help="print only the IR folder")
    args = ap.parse_args()
    hf, ir = standin_dirs(args.shape)
    if args.stage == "hf":
        build_hf(args.shape, hf)
        return 0
    if args.stage == "tokenizer":  # regrow the tokenizer of an existing build
        extend_tokenizer(hf)
        return 0
    if args.stage == "ir":
        export_ir(hf, ir)
        return 0
    path = ensure_standin(args.shape, keep_hf=args.keep_hf, log=(lambda *_: None) if args.print_path else print)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
