"""Which device runs which part of the model, and the OpenVINO properties for it.

`plan_attempts` is a pure function of the requested device, the devices present
and the config, so every combination is testable on a machine with only a CPU.
The loader walks the attempts in order and records why each one that failed did;
`Placement` is what `status` and the tray show.

The hybrid split follows openvino.genai's VLMPipeline: with device "NPU" only
the language model goes to the NPU; the vision encoder, merger and embeddings
compile on AUTO, whose priority list we set to GPU,CPU to put them on the iGPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEVICE_CHOICES = ("auto", "hybrid", "NPU", "GPU", "CPU")


@dataclass(frozen=True)
class PlacementSettings:
    """The config values placement depends on (kept separate so tests need no Config)."""

    cache_dir: str = ""
    npu_max_prompt_len: int = 1024
    npu_min_response_len: int = 128
    npu_generate_hint: str = ""
    npu_prefill_hint: str = ""
    gpu_queue_throttle: str = "LOW"
    cpu_inference_precision: str = ""  # "" = the plugin's per-processor default (bf16 where the CPU has it)
    cpu_kv_cache_precision: str = ""  # "" = the plugin's default (u8 on x86)
    cpu_dynamic_quantization_group_size: int = -1  # -1 = the plugin's default; 0 = off
    batching: bool = True  # genai on CPU/GPU: ContinuousBatchingPipeline driven step by step
    max_batch: int = 4
    kv_cache_gb: int = 0
    reuse_images: bool = False


@dataclass(frozen=True)
class Attempt:
    """One way to load the model: the device string for VLMPipeline and its properties."""

    name: str  # hybrid | NPU | GPU | CPU
    device: str
    properties: dict[str, Any]
    language_device: str
    vision_device: str
    why: str  # why this attempt is in the plan


@dataclass
class Placement:
    """What runs where, and why; what was tried and failed before it."""

    requested: str
    available: list[str]
    name: str = "none"
    language_device: str = "-"
    vision_device: str = "-"
    reason: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One short line, e.g. 'language NPU, vision GPU (hybrid)'."""
        if self.language_device == self.vision_device:
            return f"{self.language_device} ({self.name})"
        return f"language {self.language_device}, vision {self.vision_device} ({self.name})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "available": list(self.available),
            "name": self.name,
            "language_device": self.language_device,
            "vision_device": self.vision_device,
            "reason": self.reason,
            "failures": [{"attempt": a, "error": e} for a, e in self.failures],
        }


def _base(settings: PlacementSettings) -> dict[str, Any]:
    return {"CACHE_DIR": settings.cache_dir} if settings.cache_dir else {}


def _npu_props(settings: PlacementSettings) -> dict[str, Any]:
    props: dict[str, Any] = {
        "MAX_PROMPT_LEN": settings.npu_max_prompt_len,
        "MIN_RESPONSE_LEN": settings.npu_min_response_len,
    }
    if settings.npu_generate_hint:
        props["GENERATE_HINT"] = settings.npu_generate_hint
    if settings.npu_prefill_hint:
        props["PREFILL_HINT"] = settings.npu_prefill_hint
    return props


def _gpu_props(settings: PlacementSettings) -> dict[str, Any]:
    return {"GPU_QUEUE_THROTTLE": settings.gpu_queue_throttle} if settings.gpu_queue_throttle else {}


def _cpu_props(settings: PlacementSettings) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if settings.cpu_inference_precision:
        props["INFERENCE_PRECISION_HINT"] = settings.cpu_inference_precision
    if settings.cpu_kv_cache_precision:
        props["KV_CACHE_PRECISION"] = settings.cpu_kv_cache_precision
    if settings.cpu_dynamic_quantization_group_size >= 0:
        props["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = settings.cpu_dynamic_quantization_group_size
    return props


def _hybrid(settings: PlacementSettings, why: str) -> Attempt:
    dev_props: dict[str, Any] = {"NPU": _npu_props(settings), "AUTO": {"DEVICE_PRIORITIES": "GPU,CPU"}}
    if gpu := _gpu_props(settings):
        dev_props["GPU"] = gpu
    return Attempt("hybrid", "NPU", {**_base(settings), "DEVICE_PROPERTIES": dev_props}, "NPU", "GPU", why)


def _npu_only(settings: PlacementSettings, why: str) -> Attempt:
    dev_props: dict[str, Any] = {"NPU": _npu_props(settings), "AUTO": {"DEVICE_PRIORITIES": "CPU"}}
    if cpu := _cpu_props(settings):
        dev_props["CPU"] = cpu
    return Attempt("NPU", "NPU", {**_base(settings), "DEVICE_PROPERTIES": dev_props}, "NPU", "CPU", why)


def _gpu(settings: PlacementSettings, why: str) -> Attempt:
    return Attempt("GPU", "GPU", {**_base(settings), **_gpu_props(settings)}, "GPU", "GPU", why)


def _cpu(settings: PlacementSettings, why: str) -> Attempt:
    return Attempt("CPU", "CPU", {**_base(settings), **_cpu_props(settings)}, "CPU", "CPU", why)


def _families(available: list[str]) -> set[str]:
    """'GPU.0', 'GPU.1' -> 'GPU'; OpenVINO lists numbered devices when there are several."""
    return {d.split(".")[0].upper() for d in available}


def plan_attempts(requested: str, available: list[str], settings: PlacementSettings) -> tuple[list[Attempt], list[str]]:
    """Attempts in fallback order, and notes on requested devices that are absent.

    auto: NPU+GPU -> hybrid; GPU -> GPU; NPU -> NPU (vision on CPU); else CPU.
    An explicit request for a missing device falls back the same way, with a note.
    CPU is always the last resort, so a plan is never empty.
    """
    if requested not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, not {requested!r}")
    have = _families(available)
    npu, gpu = "NPU" in have, "GPU" in have
    notes: list[str] = []
    attempts: list[Attempt] = []

    def add_gpu_then_cpu(prefix: str) -> None:
        if gpu:
            attempts.append(_gpu(settings, f"{prefix}GPU present"))
        attempts.append(_cpu(settings, f"{prefix}CPU is the last resort"))

    if requested == "CPU":
        attempts.append(_cpu(settings, "CPU requested"))
        return attempts, notes
    if requested == "GPU" and not gpu:
        notes.append("GPU requested but no GPU is present")
    if requested == "NPU" and not npu:
        notes.append("NPU requested but no NPU is present")
    if requested == "hybrid" and not (npu and gpu):
        missing = " and ".join(d for d, ok in (("NPU", npu), ("GPU", gpu)) if not ok)
        notes.append(f"hybrid requested but no {missing} is present")

    if requested in ("auto", "hybrid") and npu and gpu:
        attempts.append(_hybrid(settings, "NPU and GPU present: language model on NPU, vision on GPU"))
        add_gpu_then_cpu("fallback: ")
    elif requested in ("auto", "NPU", "hybrid") and npu:
        attempts.append(_npu_only(settings, "NPU present, no GPU: language model on NPU, vision on CPU"))
        add_gpu_then_cpu("fallback: ")
    elif requested == "GPU" and gpu:
        attempts.append(_gpu(settings, "GPU requested"))
        attempts.append(_cpu(settings, "fallback: CPU is the last resort"))
    else:
        add_gpu_then_cpu("" if requested == "auto" else "fallback: ")
    return attempts, notes
