"""Load a backend on the best device that works, falling back with the reason kept.

NPU compilation can fail for reasons only the driver knows (an op it lacks, a
prompt too long for its static shapes); the user should still get an answer, on
the GPU or the CPU, and `status` should say why it is not on the NPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import Engine, EngineError
from .placement import Attempt, Placement, PlacementSettings, plan_attempts
from .store import check_model_dir

log = logging.getLogger(__name__)

BACKENDS = ("genai", "optimum", "openai")  # openai: remote_backend.py, a server instead of a model dir


def available_devices() -> list[str]:
    """What OpenVINO sees on this machine, e.g. ['CPU', 'GPU', 'NPU']."""
    import openvino as ov

    return list(ov.Core().available_devices)


def _constructor(backend: str, settings: PlacementSettings) -> Callable[[str, Attempt, Placement], Engine]:
    if backend == "genai":
        from .genai_backend import GenaiEngine

        def make(model_dir: str, attempt: Attempt, placement: Placement) -> Engine:
            if settings.batching and attempt.language_device in ("CPU", "GPU"):
                from .batching import BatchingEngine

                return BatchingEngine(model_dir, attempt, placement, max_batch=settings.max_batch,
                                      kv_cache_gb=settings.kv_cache_gb, reuse_images=settings.reuse_images)
            return GenaiEngine(model_dir, attempt, placement)  # NPU: one request at a time

        return make
    if backend == "optimum":
        from .optimum_backend import OptimumEngine

        return OptimumEngine
    raise EngineError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")


def _short(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def load_engine(
    model_dir: Path,
    backend: str = "genai",
    device: str = "auto",
    settings: PlacementSettings | None = None,
    available: list[str] | None = None,
    remote: Any = None,
) -> Engine:
    """Try each planned attempt in order; return the first engine that loads."""
    if backend == "openai":  # `remote` is the config's [remote] section; no model dir, no device
        from .remote_backend import RemoteEngine

        return RemoteEngine(remote)
    model_dir = check_model_dir(model_dir)
    settings = settings or PlacementSettings()
    make = _constructor(backend, settings)
    avail = available_devices() if available is None else list(available)
    try:
        attempts, notes = plan_attempts(device, avail, settings)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    placement = Placement(requested=device, available=avail)
    for note in notes:
        placement.failures.append((device, note))
    for attempt in attempts:
        placement.name = attempt.name
        placement.language_device = attempt.language_device
        placement.vision_device = attempt.vision_device
        placement.properties = attempt.properties
        why = attempt.why
        if placement.failures:
            why += "; " + "; ".join(f"{a} failed: {e}" for a, e in placement.failures)
        placement.reason = why
        try:
            log.info("loading %s with %s on %s", model_dir.name, backend, attempt.name)
            engine = make(str(model_dir), attempt, placement)
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001 - any compile failure means "try the next device"
            log.warning("could not load on %s: %s", attempt.name, _short(exc))
            placement.failures.append((attempt.name, _short(exc)))
            continue
        log.info("loaded: %s (%s)", placement.summary(), placement.reason)
        return engine
    raise EngineError(
        "the model could not be loaded on any device: "
        + "; ".join(f"{a}: {e}" for a, e in placement.failures)
    )
