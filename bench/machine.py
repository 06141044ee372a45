"""The machine and its limit: CPU, memory, OS, measured read bandwidth, and bytes read per token.

Why: a decode step on CPU reads every language-model weight once, so memory
read bandwidth divided by those bytes is the ceiling no path can pass. Saying
how far each path is from it tells more than the raw tokens/s.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores, memory, OS and the load when asked."""
    cpu = platform.processor() or platform.machine()
    isa: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == (platform.processor() or platform.machine()):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not isa:
                # the vector extensions OpenVINO's CPU kernels choose between (int4 decompression, bf16, AMX)
                isa = sorted(f for f in line.split(":", 1)[1].split()
                             if f in ("avx2", "fma", "avx_vnni") or f.startswith(("avx512", "amx")))
    except OSError:
        pass
    mem_gb = None
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.system()} {platform.release()})"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "isa": isa,
        "memory_gb": mem_gb,
        "os": os_name,
        "python": platform.python_version(),
        "openvino": _version("openvino"),
        "openvino_genai": _version("openvino_genai"),
        "optimum_intel": _version("optimum.intel"),
        "load_avg": load_avg(),
    }


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version({"openvino_genai": "openvino-genai", "optimum.intel": "optimum-intel"}.get(module, module))
    except Exception:  # noqa: BLE001 - a missing package is reported as such
        return "missing"


def load_avg() -> list[float] | None:
    """1, 5, 15-minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _read_once(chunks: list[np.ndarray]) -> float:
    """Seconds for all threads to read their chunk once (one thread per chunk, started together)."""
    barrier = threading.Barrier(len(chunks) + 1)
    sink: list[int] = [0] * len(chunks)

    def work(i: int) -> None:
        barrier.wait()
        # Bitwise OR over uint64 words: one vectorised load per element, trivial compute (the
        # fastest numpy reduction here), releases the GIL, no BLAS; the result is kept.
        sink[i] = int(np.bitwise_or.reduce(chunks[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(chunks))]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def read_bandwidth(total_mb: int = 2048, threads: tuple[int, ...] = (1, 2, 4), repeats: int = 5) -> dict[str, Any]:
    """Best read bandwidth (GB/s, 1e9 bytes) over thread counts, and a one-thread copy for comparison.

    The buffer (default 2 GiB) is far larger than any cache, split evenly between the
    threads; each figure is the best of `repeats` passes after one untimed pass.
    """
    n_words = total_mb * 2**20 // 8
    buf = np.arange(n_words, dtype=np.uint64)  # touched pages: no first-touch cost in the timing
    by_threads: dict[str, float] = {}
    for n in threads:
        chunks = np.array_split(buf, n)
        _read_once(chunks)
        best = min(_read_once(chunks) for _ in range(repeats))
        by_threads[str(n)] = round(buf.nbytes / best / 1e9, 2)
    half = buf[: n_words // 2]
    dst = np.empty_like(half)
    np.copyto(dst, half)
    best_copy = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, half)
        best_copy = min(best_copy, time.perf_counter() - t0)
    return {
        "method": (
            f"numpy bitwise_or.reduce over a {total_mb} MiB uint64 buffer split across 1/2/4 threads "
            f"(GIL released), best of {repeats} passes; copy = one-thread np.copyto of half of it, "
            "counted as read + write bytes"
        ),
        "read_gbps_by_threads": by_threads,
        "read_gbps": max(by_threads.values()),
        "copy_gbps_one_thread": round(2 * half.nbytes / best_copy / 1e9, 2),
    }


def weight_bytes(ir_dir: Path) -> dict[str, Any]:
    """Bytes of weights the language model reads per generated token.

    Counted: the whole `openvino_language_model.bin` (int4 weights, their fp16 scales,
    the LM head - tied to the embeddings, kept int8 by NNCF's default - and the norms);
    every decode step multiplies the hidden state by each of these once. Not counted:
    the text-embedding table (one row per token) and the vision models (run once per
    image, in the prefill), and the KV cache (grows with the context; estimated apart).
    """
    ir_dir = Path(ir_dir)
    sizes = {p.name: p.stat().st_size for p in sorted(ir_dir.glob("*.bin"))}
    lm = sizes.get("openvino_language_model.bin", 0)
    return {"language_model_bin": lm, "all_bins": sizes, "per_token": lm}


def kv_bytes_per_token(config: dict[str, Any], context: int, bytes_per_value: float = 2.0) -> int:
    """KV cache bytes one decode step reads at a context length (K and V, all layers)."""
    t = config.get("text_config", config)
    head_dim = t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"]
    per_pos = 2 * t["num_hidden_layers"] * t["num_key_value_heads"] * head_dim * bytes_per_value
    return int(per_pos * context)
