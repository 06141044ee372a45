"""Export a local Hugging Face Qwen3-VL folder to OpenVINO IR with weight compression.

Why here and not a shell call to `optimum-cli`: errors surface as Python
exceptions we can turn into one clear sentence, and the knobs are typed.
This module imports torch (through optimum-intel) only when `export_model`
runs, so importing it costs nothing on the inference path.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

WeightFormat = Literal["fp16", "int8", "int4", "nf4"]
WEIGHT_FORMATS: tuple[str, ...] = ("fp16", "int8", "int4", "nf4")
LmHead = Literal["int8", "int4"]
LM_HEADS: tuple[str, ...] = ("int8", "int4")


class ExportError(RuntimeError):
    """An export that cannot run; the message says what to do."""


@dataclass(frozen=True)
class ExportOptions:
    """Weight compression settings. Defaults are NPU-ready: int4, symmetric, group 128, ratio 1.0."""

    weight_format: WeightFormat = "int4"
    sym: bool = True
    group_size: int = 128
    ratio: float = 1.0
    # The LM head (the last MatMul, tied to the embeddings): NNCF keeps it 8-bit by default for accuracy.
    # int4 reads ~0.2 GB less per token (docs/benchmarks.md, weight layouts); its quality is unmeasured here.
    lm_head: LmHead = "int8"

    def validate(self) -> None:
        if self.weight_format not in WEIGHT_FORMATS:
            raise ExportError(f"weight format must be one of {', '.join(WEIGHT_FORMATS)}, not {self.weight_format!r}")
        if not (0.0 < self.ratio <= 1.0):
            raise ExportError(f"ratio must be in (0, 1], not {self.ratio}")
        if self.group_size != -1 and self.group_size <= 0:
            raise ExportError(f"group size must be positive or -1 (per channel), not {self.group_size}")
        if self.lm_head not in LM_HEADS:
            raise ExportError(f"LM head must be one of {', '.join(LM_HEADS)}, not {self.lm_head!r}")
        if self.lm_head == "int4" and self.weight_format not in ("int4", "nf4"):
            raise ExportError(f"an int4 LM head needs a 4-bit weight format, not {self.weight_format}")
        if self.weight_format == "nf4" and self.group_size != -1:
            # NF4 on the NPU is channel-wise only; optimum accepts groups but the NPU does not.
            pass

    def quantization_config(self) -> dict | None:
        """The optimum-intel weight quantization dict, or None for plain fp16."""
        if self.weight_format == "fp16":
            return None
        cfg: dict = {"bits": 8 if self.weight_format == "int8" else 4, "sym": self.sym}
        if self.weight_format in ("int4", "nf4"):
            cfg["group_size"] = self.group_size
            cfg["ratio"] = self.ratio
            if self.lm_head == "int4":
                cfg["all_layers"] = True  # NNCF's switch for the first and last layers (here: the LM head)
        if self.weight_format == "nf4":
            cfg["dtype"] = "nf4"
        return cfg


def require_export_extra() -> None:
    """Raise ExportError naming the missing package unless torch, torchvision and optimum-intel import."""
    try:
        import optimum.intel  # noqa: F401
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as exc:
        raise ExportError(
            f"model export needs the 'export' extra ({exc.name} is missing): "
            "run `pip install 'qwen-tray[export]'` in the qwen-tray environment"
        ) from exc


def _strip_local_paths(ir_dir: Path, src: Path, label: str) -> None:
    """optimum records the source folder's absolute path; keep only a label (privacy, reproducibility)."""
    cfg = ir_dir / "openvino_config.json"
    if cfg.is_file():
        text = cfg.read_text(encoding="utf-8")
        for form in {str(src), str(src.resolve())}:
            text = text.replace(json.dumps(form)[1:-1], label)
        cfg.write_text(text, encoding="utf-8")


def export_model(src: Path, out: Path, options: ExportOptions = ExportOptions(), source_label: str = "") -> Path:
    """Convert the Hugging Face folder `src` into OpenVINO IR at `out` (tokenizers included).

    The IR is written to a temporary folder first and moved into place at the end,
    so a failed export never leaves a half-written model where a loader would find it.
    `source_label` replaces the source path in the IR's metadata (default: the folder's name).
    """
    options.validate()
    src, out = Path(src), Path(out)
    if not (src / "config.json").is_file():
        raise ExportError(f"{src} is not a Hugging Face model folder (no config.json)")
    require_export_extra()
    from optimum.exporters.openvino import main_export
    from optimum.exporters.openvino.__main__ import _main_quantize
    from optimum.intel import OVConfig

    qcfg = options.quantization_config()
    ov_config = OVConfig(dtype="fp16") if qcfg is None else OVConfig(quantization_config=qcfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as tmp:
        stage = Path(tmp) / "ir"
        main_export(
            model_name_or_path=str(src),
            output=stage,
            task="image-text-to-text",
            ov_config=ov_config,
            convert_tokenizer=True,
            library_name="transformers",
        )
        if qcfg is not None:
            # The same step `optimum-cli export openvino --weight-format ...` runs after main_export.
            _main_quantize(
                model_name_or_path=str(src),
                task="image-text-to-text",
                library_name="transformers",
                quantization_config=qcfg,
                output=stage,
                cache_dir=str(Path(tmp) / "hf-cache"),
            )
        _strip_local_paths(stage, src, source_label or src.name)
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(stage), str(out))
    return out
