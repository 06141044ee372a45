"""Device placement: the plan for every set of devices (pure), and a real NPU failure falling back to CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_tray.engine.loader import load_engine
from qwen_tray.engine.placement import PlacementSettings, plan_attempts

S = PlacementSettings(cache_dir="/c", npu_max_prompt_len=2048, npu_min_response_len=256, gpu_queue_throttle="LOW")


def names(requested: str, available: list[str]) -> list[str]:
    return [a.name for a in plan_attempts(requested, available, S)[0]]


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        ("auto", ["CPU", "GPU", "NPU"], ["hybrid", "GPU", "CPU"]),
        ("auto", ["CPU", "GPU.0", "GPU.1", "NPU"], ["hybrid", "GPU", "CPU"]),
        ("auto", ["CPU", "GPU"], ["GPU", "CPU"]),
        ("auto", ["CPU", "NPU"], ["NPU", "CPU"]),
        ("auto", ["CPU"], ["CPU"]),
        ("hybrid", ["CPU", "GPU", "NPU"], ["hybrid", "GPU", "CPU"]),
        ("hybrid", ["CPU", "GPU"], ["GPU", "CPU"]),
        ("NPU", ["CPU", "GPU", "NPU"], ["NPU", "GPU", "CPU"]),
        ("NPU", ["CPU"], ["CPU"]),
        ("GPU", ["CPU", "GPU", "NPU"], ["GPU", "CPU"]),
        ("GPU", ["CPU"], ["CPU"]),
        ("CPU", ["CPU", "GPU", "NPU"], ["CPU"]),
    ],
)
def test_fallback_order(requested: str, available: list[str], expected: list[str]) -> None:
    assert names(requested, available) == expected


def test_missing_requested_device_is_noted() -> None:
    _, notes = plan_attempts("NPU", ["CPU"], S)
    assert notes == ["NPU requested but no NPU is present"]
    _, notes = plan_attempts("hybrid", ["CPU", "GPU"], S)
    assert notes == ["hybrid requested but no NPU is present"]


def test_hybrid_puts_language_on_npu_and_vision_on_gpu() -> None:
    hybrid = plan_attempts("auto", ["CPU", "GPU", "NPU"], S)[0][0]
    assert hybrid.device == "NPU"
    assert (hybrid.language_device, hybrid.vision_device) == ("NPU", "GPU")
    props = hybrid.properties
    assert props["CACHE_DIR"] == "/c"
    dev = props["DEVICE_PROPERTIES"]
    assert dev["NPU"] == {"MAX_PROMPT_LEN": 2048, "MIN_RESPONSE_LEN": 256}
    assert dev["AUTO"] == {"DEVICE_PRIORITIES": "GPU,CPU"}
    assert dev["GPU"] == {"GPU_QUEUE_THROTTLE": "LOW"}


def test_npu_without_gpu_puts_vision_on_cpu() -> None:
    npu = plan_attempts("auto", ["CPU", "NPU"], S)[0][0]
    assert (npu.language_device, npu.vision_device) == ("NPU", "CPU")
    assert npu.properties["DEVICE_PROPERTIES"]["AUTO"] == {"DEVICE_PRIORITIES": "CPU"}


def test_npu_hints_only_when_configured() -> None:
    hinted = PlacementSettings(npu_generate_hint="BEST_PERF", npu_prefill_hint="FAST_COMPILE")
    npu = plan_attempts("NPU", ["CPU", "NPU"], hinted)[0][0]
    assert npu.properties["DEVICE_PROPERTIES"]["NPU"]["GENERATE_HINT"] == "BEST_PERF"
    assert npu.properties["DEVICE_PROPERTIES"]["NPU"]["PREFILL_HINT"] == "FAST_COMPILE"
    assert "CACHE_DIR" not in npu.properties  # no cache dir configured


def test_gpu_queue_throttle_default_and_override() -> None:
    gpu = plan_attempts("GPU", ["CPU", "GPU"], S)[0][0]
    assert gpu.properties == {"CACHE_DIR": "/c", "GPU_QUEUE_THROTTLE": "LOW"}
    off = plan_attempts("GPU", ["CPU", "GPU"], PlacementSettings(gpu_queue_throttle=""))[0][0]
    assert off.properties == {}


def test_cpu_properties() -> None:
    cpu = plan_attempts("CPU", ["CPU"], S)[0][0]
    assert cpu.device == "CPU" and cpu.properties == {"CACHE_DIR": "/c"}  # the plugin's fast defaults


def test_cpu_precisions_only_when_configured() -> None:
    exact = PlacementSettings(cpu_inference_precision="f32", cpu_kv_cache_precision="f32",
                              cpu_dynamic_quantization_group_size=0)
    props = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}
    assert plan_attempts("CPU", ["CPU"], exact)[0][0].properties == props
    # NPU without GPU: vision runs on the CPU through AUTO, so the CPU's settings go along.
    npu = plan_attempts("NPU", ["CPU", "NPU"], exact)[0][0]
    assert npu.properties["DEVICE_PROPERTIES"]["CPU"] == props
    # The CPU fallback after a failed GPU keeps them too.
    assert plan_attempts("GPU", ["CPU", "GPU"], exact)[0][-1].properties == props


def test_cpu_precisions_reach_the_compiled_model(tiny_model: Path) -> None:
    """The pinned values are what OpenVINO compiled with, not just what we asked for."""
    import openvino as ov

    exact = PlacementSettings(cpu_inference_precision="f32", cpu_kv_cache_precision="f32",
                              cpu_dynamic_quantization_group_size=0)
    props = plan_attempts("CPU", ["CPU"], exact)[0][0].properties
    compiled = ov.Core().compile_model(str(tiny_model / "openvino_language_model.xml"), "CPU", props)
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert str(compiled.get_property("KV_CACHE_PRECISION")) == "<Type: 'float32'>"
    assert int(compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")) == 0


def test_unknown_device_is_rejected() -> None:
    with pytest.raises(ValueError, match="device must be one of"):
        plan_attempts("TPU", ["CPU"], S)


def test_npu_failure_falls_back_with_the_reason(tiny_model: Path, tmp_path: Path) -> None:
    """This machine has no NPU: pretend OpenVINO listed one; compiling for it fails for real."""
    cache = tmp_path / "cache"
    engine = load_engine(tiny_model, "genai", "auto", PlacementSettings(cache_dir=str(cache)),
                         available=["CPU", "NPU"])
    p = engine.placement
    assert p.name == "CPU" and p.language_device == "CPU"
    assert [a for a, _ in p.failures] == ["NPU"]
    assert p.failures[0][1]  # the compiler's reason is kept
    assert "NPU failed" in p.reason
    d = p.as_dict()
    assert d["failures"][0]["attempt"] == "NPU" and d["requested"] == "auto"
    assert any(cache.iterdir()), "compiled blobs go to the per-user cache dir"
    engine.close()


def test_hybrid_failure_falls_back_through_gpu_to_cpu(tiny_model: Path) -> None:
    engine = load_engine(tiny_model, "genai", "auto", PlacementSettings(), available=["CPU", "GPU", "NPU"])
    p = engine.placement
    assert [a for a, _ in p.failures] == ["hybrid", "GPU"]
    assert p.name == "CPU"
    assert "hybrid failed" in p.reason and "GPU failed" in p.reason
    engine.close()
