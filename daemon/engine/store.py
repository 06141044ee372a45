"""The model store: where exported models live, what a complete one holds, and which to use.

Models are folders of OpenVINO IR under the per-user data dir (`qwen-tray config`
prints it). A model is named by its folder, e.g. `Qwen3-VL-4B-Instruct-int4`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..paths import Paths, bundled_model_dir

DEFAULT_MODEL_ID = "Qwen/Qwen3-VL-4B-Instruct"

REQUIRED_FILES = (
    "config.json",
    "openvino_language_model.xml",
    "openvino_language_model.bin",
    "openvino_text_embeddings_model.xml",
    "openvino_text_embeddings_model.bin",
    "openvino_vision_embeddings_model.xml",
    "openvino_vision_embeddings_model.bin",
    "openvino_vision_embeddings_merger_model.xml",
    "openvino_vision_embeddings_merger_model.bin",
    "openvino_tokenizer.xml",
    "openvino_detokenizer.xml",
    "preprocessor_config.json",
)


class ModelNotFound(FileNotFoundError):
    """No usable model at a path; the message says what to do."""


def missing_files(model_dir: Path) -> list[str]:
    """Required IR files absent from `model_dir` (empty list = complete)."""
    return [f for f in REQUIRED_FILES if not (model_dir / f).is_file()]


def check_model_dir(model_dir: Path) -> Path:
    """Return `model_dir` if it holds a complete OpenVINO Qwen3-VL export, else raise ModelNotFound."""
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise ModelNotFound(
            f"no model folder at {model_dir}: run `qwen-tray model pull` or pass --model with an exported folder"
        )
    if missing := missing_files(model_dir):
        raise ModelNotFound(
            f"{model_dir} is not a complete OpenVINO export (missing {', '.join(missing[:3])}"
            f"{'...' if len(missing) > 3 else ''}): re-run `qwen-tray model export` or `qwen-tray model pull`"
        )
    return model_dir


_PUBLISHED_SUFFIXES = ("-ov", "-fp16", "-fp32", "-bf16", "-int8", "-int4")


def store_name(model_id: str, weight_format: str = "int4") -> str:
    """Folder name in the store for a hub model id.

    A published IR's own suffixes go (`OpenVINO/Qwen3-VL-4B-Instruct-fp16-ov` -> `Qwen3-VL-4B-Instruct`)
    before the format we store it in is added, so every source of one model lands in one folder.
    """
    base = model_id.rstrip("/").split("/")[-1]
    stripped = True
    while stripped:
        stripped = False
        for suffix in _PUBLISHED_SUFFIXES:
            if base.lower().endswith(suffix) and len(base) > len(suffix):
                base, stripped = base[: -len(suffix)], True
    return f"{base}-{weight_format}"


@dataclass(frozen=True)
class StoredModel:
    name: str
    path: Path
    complete: bool
    size_bytes: int
    source: str  # what it was exported from, when known


def list_models(paths: Paths) -> list[StoredModel]:
    """Every folder in the store, complete or not, sorted by name."""
    if not paths.models_dir.is_dir():
        return []
    out = []
    for d in sorted(p for p in paths.models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        source = ""
        meta = d / "qwen-tray.json"
        if meta.is_file():
            try:
                source = json.loads(meta.read_text()).get("source", "")
            except (OSError, ValueError):
                source = ""
        out.append(StoredModel(d.name, d, not missing_files(d), size, source))
    return out


def resolve_model(configured: str, paths: Paths) -> tuple[Path, bool]:
    """The model to run and whether it is the bundled demo model.

    A configured path wins (and must be complete). Otherwise the store's default
    model, then the only complete model in the store, then the bundled tiny model.
    """
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():  # check_model_dir's advice (`--model`) is for `ask`; this is the config's key
            raise ModelNotFound(
                f"model.path in the config is {configured}, and there is no folder there: point it at an exported "
                "model folder (`qwen-tray model list` shows the store), or set it to \"\" to use the store's model"
            )
        return check_model_dir(path), False
    default = paths.models_dir / store_name(DEFAULT_MODEL_ID)
    if default.is_dir() and not missing_files(default):
        return default, False
    complete = [m for m in list_models(paths) if m.complete]
    if complete:
        return complete[0].path, False
    return check_model_dir(bundled_model_dir()), True
