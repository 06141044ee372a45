"""Compress a published OpenVINO IR (fp16, int8, asymmetric int4) to NPU-ready int4 with NNCF, without torch.

Why this path: NNCF's data-free weight compression works on an `openvino.Model` directly, so a
published fp16 IR becomes the NPU's int4 in minutes with no torch, no transformers and no 16 GB
PyTorch export on the user's laptop.

What each part of Qwen3-VL gets, and why (the same split optimum-intel's int4 export makes, so
both paths give the same kind of model):
- the language model (the part the NPU runs): int4 symmetric, group 128 (or channel-wise), ratio
  1.0: every decoder MatMul in int4, as the NPU requires. NNCF keeps the last MatMul, the LM head,
  in 8 bit (its default backup precision, int8 asymmetric): it decides every output token and
  suffers most from rounding; the NPU runs an 8-bit head, and OpenVINO's published NPU-ready
  models keep it so too.
- the text embeddings, the vision encoder and its merger/position models: int8 symmetric. They
  run on the iGPU or CPU (genai compiles them on AUTO), are small next to the language model,
  and an embedding table is a lookup where 4-bit rounding costs accuracy for little speed.
- tokenizer and detokenizer models: copied as they are (no weights to compress).

Weights already compressed in the source (int8, asymmetric int4) are first folded back to float
(OpenVINO constant folding of the decompression subgraph), then compressed again.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .ir_info import LANGUAGE_MODEL_XML, is_float, read_ir_weights

# NNCF imports torch whenever it is installed (nncf/tensor/functions/__init__.py registers a torch
# backend), which costs seconds and hundreds of MB for nothing on an OpenVINO model.
TORCH_STACK = ("torch", "torchvision", "transformers", "optimum")

# IR files with weights worth compressing; tokenizers are left alone.
TOKENIZER_XML = ("openvino_tokenizer.xml", "openvino_detokenizer.xml")


class CompressError(RuntimeError):
    """A compression that cannot run; the message says what to do."""


@dataclass(frozen=True)
class CompressOptions:
    """Settings for the language model; the other parts always get int8 symmetric."""

    group_size: int = 128  # -1 = channel-wise
    ratio: float = 1.0
    sym: bool = True
    bits: int = 4
    all_layers: bool = False  # the LM head in 4 bit too (NNCF keeps it 8-bit by default)

    def nncf_mode(self):  # -> nncf.CompressWeightsMode
        import nncf

        if self.bits == 8:
            return nncf.CompressWeightsMode.INT8_SYM if self.sym else nncf.CompressWeightsMode.INT8_ASYM
        return nncf.CompressWeightsMode.INT4_SYM if self.sym else nncf.CompressWeightsMode.INT4_ASYM


def ir_files(model_dir: Path) -> list[Path]:
    """The IR models in a folder that carry weights (tokenizers excluded)."""
    return sorted(p for p in Path(model_dir).glob("openvino_*.xml") if p.name not in TOKENIZER_XML)


def peak_memory_bytes(model_dir: Path) -> int:
    """Expected peak memory of `compress_ir` on this folder.

    Parts are compressed one at a time, so the largest part sets the peak. For that part NNCF
    holds the source weights (OpenVINO maps the .bin; the pages NNCF reads stay resident), one
    layer at a time in float32 while it computes scales, and the compressed copy until it is
    saved. Measured on the 4B stand-in (docs/benchmarks.md): 10.4 GB peak RSS for an 8 GB fp16
    language model (1.3x, counting the mapped source pages, which the kernel can reclaim); the
    estimate is 1.25x the largest part plus 0.75 GB for OpenVINO and NNCF themselves.
    """
    largest = max((p.with_suffix(".bin").stat().st_size for p in ir_files(model_dir)
                   if p.with_suffix(".bin").is_file()), default=0)
    return peak_memory_for(largest)


def peak_memory_for(largest_part_bytes: int) -> int:
    """`peak_memory_bytes` from the size of the largest IR part (as a hub lists it, before downloading)."""
    return int(largest_part_bytes * 1.25) + 768 * 1024**2


def output_bytes(model_dir: Path, options: CompressOptions = CompressOptions()) -> int:
    """Expected size of the compressed folder (to check free disk space before starting)."""
    total = 0
    for f in Path(model_dir).iterdir():
        if not f.is_file():
            continue
        size = f.stat().st_size
        if f.suffix == ".bin" and f.with_suffix(".xml") in ir_files(model_dir):
            # fp16 -> int4 is ~0.3x with scales and the 8-bit head; -> int8 ~0.5x; never more than the source.
            factor = 0.35 if (f.with_suffix(".xml").name == LANGUAGE_MODEL_XML and options.bits == 4) else 0.55
            size = int(size * factor)
        total += size
    return total


def _decompress(model) -> bool:  # model: openvino.Model
    """Fold compressed weights (int8/int4 constant -> Convert -> Subtract -> Multiply) back to float.

    Returns whether anything was compressed. Saved IR carries no 'decompression' marks, so
    plain constant folding evaluates those subgraphs into float constants.
    """
    from openvino import passes

    low = {"i4", "u4", "i8", "u8", "nf4"}
    if not any(op.get_type_name() == "Constant" and op.get_element_type().get_type_name() in low
               and len(op.get_output_shape(0)) >= 2 for op in model.get_ordered_ops()):
        return False
    manager = passes.Manager()
    manager.register_pass(passes.ConstantFolding())
    manager.run_passes(model)
    return True


def _needs_work(xml: Path, options: CompressOptions) -> bool:
    """False when a part is already in its target format (then it is copied, not recompressed)."""
    weights = read_ir_weights(xml)
    if not weights.weights:
        return False
    if xml.name == LANGUAGE_MODEL_XML:
        ready, _ = weights.npu_ready()
        matmuls = weights.matmuls()
        head_8bit = bool(matmuls) and matmuls[-1].storage.startswith("int8")
        return not (ready and options.bits == 4 and options.sym and options.group_size in (128, -1)
                    and not (options.all_layers and head_8bit))
    return any(is_float(w.storage) for w in weights.weights)


Progress = Callable[[str], None]


@contextmanager
def torch_hidden() -> Iterator[None]:
    """Make torch and friends look absent (as in a venv without the export extra) while NNCF runs.

    A `None` entry in sys.modules makes `import torch` raise ImportError and `find_spec` return None,
    which is exactly what NNCF checks. Modules already imported are left alone.
    """
    hidden = [name for name in TORCH_STACK if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def compress_ir(src: Path, out: Path, options: CompressOptions = CompressOptions(), log: Progress = print) -> Path:
    """Write `src`'s model to `out` with the language model in int4 (or `options`) and the rest int8 sym.

    `out` must not exist; non-IR files (configs, tokenizer files) are copied. Nothing here imports torch.
    """
    with torch_hidden():
        return _compress_ir(Path(src), Path(out), options, log)


def _compress_ir(src: Path, out: Path, options: CompressOptions, log: Progress) -> Path:
    import nncf
    import openvino as ov

    if not (src / LANGUAGE_MODEL_XML).is_file():
        raise CompressError(f"{src} holds no {LANGUAGE_MODEL_XML}: not an OpenVINO Qwen3-VL IR")
    if options.group_size != -1 and options.group_size <= 0:
        raise CompressError(f"group size must be positive or -1 (channel-wise), not {options.group_size}")
    out.mkdir(parents=True)
    parts = ir_files(src)
    for f in sorted(src.iterdir()):
        if f.is_file() and not (f.suffix in (".xml", ".bin") and f.with_suffix(".xml") in parts):
            shutil.copy2(f, out / f.name)
    core = ov.Core()
    for n, xml in enumerate(parts, 1):
        tag = f"[{n}/{len(parts)}] {xml.stem.removeprefix('openvino_')}"
        if not _needs_work(xml, options):
            log(f"{tag}: already in its target format, copied")
            shutil.copy2(xml, out / xml.name)
            if xml.with_suffix(".bin").is_file():
                shutil.copy2(xml.with_suffix(".bin"), out / xml.with_suffix(".bin").name)
            continue
        model = core.read_model(xml)
        if _decompress(model):
            log(f"{tag}: source weights are already compressed; unpacked to float first")
        if xml.name == LANGUAGE_MODEL_XML:
            mode = options.nncf_mode()
            kwargs: dict = {}
            if options.bits == 4:
                kwargs = {"group_size": options.group_size, "ratio": options.ratio, "all_layers": options.all_layers}
            log(f"{tag}: {mode.value}" + (f", group {options.group_size}, ratio {options.ratio}" if kwargs else "")
                + (", LM head int4" if kwargs and options.all_layers else ""))
            model = nncf.compress_weights(model, mode=mode, **kwargs)
        else:
            log(f"{tag}: int8_sym")
            model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_SYM)
        # compress_to_fp16 keeps scales and the remaining float constants in fp16, as optimum's export does.
        ov.save_model(model, out / xml.name, compress_to_fp16=True)
        del model
    return out
