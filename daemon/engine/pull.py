"""`model pull`: the cheapest way from a hub repo to an NPU-ready model in the store.

Three kinds of source, told apart by the repo's file list and, for an IR, by its language
model's XML (the element types of its weights; NNCF's rt_info when present):
- `ir-ready`: an OpenVINO IR whose language model is already symmetric int4 (group 128 or
  channel-wise, every decoder layer): download and verify, nothing else;
- `ir-compress`: an OpenVINO IR in fp16/int8 (or asymmetric int4): download, then NNCF's
  data-free int4_sym compression on the OpenVINO model (`compress.py`), no torch;
- `checkpoint`: a PyTorch checkpoint (config.json + safetensors, no IR): today's optimum-intel
  export, which alone needs the `export` extra (torch).

Everything happens in `<store>/.staging/<name>/` (a dot folder the loader never looks in):
downloads resume from there after an interrupt, and the model is renamed into the store only
when it is complete, verified and (with NPU settings) NPU-ready. Free disk space is checked
before the weights are downloaded, and the compression's or export's peak memory before it runs.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .compress import CompressOptions, compress_ir, peak_memory_for
from .export import ExportOptions
from .hub import HubError, RemoteFile, Source, fetch_verified, make_source
from .ir_info import LANGUAGE_MODEL_XML, model_format, read_ir_weights
from .store import check_model_dir, missing_files, store_name

# The default `model pull`: OpenVINO's published fp16 IR of Qwen3-VL-4B, compressed here to int4
# (no NPU-ready int4 IR of the 4B is published; the 8B one is OpenVINO/Qwen3-VL-8B-Instruct-int4-ov).
DEFAULT_PULL_ID = "OpenVINO/Qwen3-VL-4B-Instruct-fp16-ov"
SKIP_FILES = (".gitattributes", "README.md")
MARGIN_BYTES = 512 * 1024**2
# Peak memory of today's export, as a multiple of the checkpoint's bytes (4B stand-in: 14.3 GB for 8.9 GB bf16,
# docs/benchmarks.md).
EXPORT_PEAK_FACTOR = 1.7

Say = Callable[[str], None]


class PullError(RuntimeError):
    """A pull that cannot go on; the message says what to do."""


@dataclass
class Plan:
    """What a pull will do and what it needs before it starts."""

    kind: str  # ir-ready | ir-compress | checkpoint
    files: list[RemoteFile]
    download_bytes: int  # still to download
    output_bytes: int  # written besides the download (compressed or exported model)
    peak_memory: int  # 0 when nothing runs but the download

    def describe(self) -> str:
        what = {"ir-ready": "an NPU-ready OpenVINO IR: download and verify only",
                "ir-compress": "an OpenVINO IR to compress to int4 with NNCF (no torch)",
                "checkpoint": "a PyTorch checkpoint: export with optimum-intel (needs the export extra)"}[self.kind]
        return what


def gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def is_npu_options(options: ExportOptions) -> bool:
    return (options.weight_format == "int4" and options.sym and options.ratio == 1.0
            and options.group_size in (128, -1))


def classify(files: list[RemoteFile]) -> str:
    """'ir' or 'checkpoint' from the file list alone."""
    names = {f.path for f in files}
    if LANGUAGE_MODEL_XML in names and LANGUAGE_MODEL_XML.replace(".xml", ".bin") in names:
        return "ir"
    if "config.json" in names and any(n.endswith((".safetensors", ".bin")) for n in names):
        return "checkpoint"
    raise PullError("the repo holds neither an OpenVINO Qwen3-VL IR (openvino_language_model.xml/.bin) nor a "
                    "PyTorch checkpoint (config.json + safetensors)")


def _remaining(files: list[RemoteFile], download: Path) -> int:
    """Bytes still to fetch: files not yet complete, less what partial downloads already hold."""
    todo = sum(f.size or 0 for f in files if not ((download / f.path).is_file()
                                                    and (download / f.path).stat().st_size == f.size))
    partial = sum(p.stat().st_size for p in download.glob(".cache/huggingface/download/**/*.incomplete"))
    return max(0, todo - partial)


def make_plan(kind: str, files: list[RemoteFile], download: Path) -> Plan:
    weights = [f for f in files if f.path.endswith((".bin", ".safetensors"))]
    if kind == "ir-ready":
        return Plan(kind, files, _remaining(files, download), 0, 0)
    if kind == "ir-compress":
        lm = sum(f.size or 0 for f in weights if f.path == LANGUAGE_MODEL_XML.replace(".xml", ".bin"))
        rest = sum(f.size or 0 for f in weights) - lm
        largest = max((f.size or 0 for f in weights), default=0)
        # compress.peak_memory_bytes / output_bytes, from the sizes the hub lists.
        return Plan(kind, files, _remaining(files, download), int(lm * 0.35 + rest * 0.55),
                    peak_memory_for(largest))
    total = sum(f.size or 0 for f in weights)
    return Plan(kind, files, _remaining(files, download), total, int(total * EXPORT_PEAK_FACTOR))


def check_resources(plan: Plan, free_disk: int, free_memory: int | None, where: Path,
                    check_memory: bool = True) -> None:
    """Refuse, before downloading, a pull that cannot fit on the disk or (its compression/export) in memory."""
    need = plan.download_bytes + plan.output_bytes + MARGIN_BYTES
    if need > free_disk:
        raise PullError(f"not enough disk space: this pull needs about {gb(need)} free at {where} "
                        f"({gb(plan.download_bytes)} to download + {gb(plan.output_bytes)} to write), "
                        f"only {gb(free_disk)} is free; nothing was downloaded")
    if check_memory and plan.peak_memory and free_memory is not None and plan.peak_memory > free_memory:
        step = "compression" if plan.kind == "ir-compress" else "export"
        raise PullError(f"not enough memory: the {step} peaks near {gb(plan.peak_memory)}, only {gb(free_memory)} "
                        "is available; close other programs, or pass --ignore-memory-check to try anyway")


def free_memory_bytes() -> int | None:
    try:
        import psutil  # a dependency of nncf
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def _wanted(files: list[RemoteFile]) -> list[RemoteFile]:
    return [f for f in files if f.path not in SKIP_FILES and not f.path.startswith(".")]


def _fetch_all(source: Source, files: list[RemoteFile], download: Path, say: Say) -> None:
    total = len(files)
    for n, f in enumerate(files, 1):
        if f.size and f.size > 50 * 1024**2:
            say(f"[{n}/{total}] {f.path} ({gb(f.size)})")
        try:
            fetch_verified(source, f, download, say)
        except HubError as exc:
            raise PullError(str(exc) + ("; the file was deleted and nothing reached the store"
                                        if "does not match" in str(exc) or "the hub lists" in str(exc) else "")) \
                from None


def _stage_for(staging: Path, source: Source) -> None:
    """Reuse a staging folder only for the same repo and revision; otherwise start afresh."""
    marker = staging / "source.json"
    want = {"model_id": source.model_id, "source": source.label, "revision": source.revision}
    if staging.is_dir():
        try:
            have = json.loads(marker.read_text())
        except (OSError, ValueError):
            have = None
        if have != want:
            shutil.rmtree(staging)
    (staging / "download").mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(want))
    shutil.rmtree(staging / "out", ignore_errors=True)  # an interrupted compression/export starts over


def _install(result: Path, out: Path, staging: Path) -> None:
    """Put `result` at `out` (replacing what was there) with renames on one file system."""
    try:
        if out.exists():
            old = staging / "old"
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        result.rename(out)
    except OSError as exc:  # Windows: a running qwen-tray holds the old model's files open
        raise PullError(f"could not replace {out} ({exc.strerror or exc}): stop qwen-tray (`qwen-tray stop`) and "
                        "run the same pull again (the download is kept)") from None


def pull(model_id: str, source_kind: str, models_dir: Path, options: ExportOptions = ExportOptions(),
         force: bool = False, check_memory: bool = True, say: Say = print) -> Path:
    """Pull `model_id` into `models_dir`; return the model's folder there.

    One pull per store name at a time (a lock file beside the staging folder): two would write the
    same partial files.
    """
    from filelock import FileLock, Timeout

    options.validate()
    name = store_name(model_id, options.weight_format)
    out = models_dir / name
    if out.is_dir() and not missing_files(out) and not force:
        say(f"{name} is already in the store at {out} (use --force to replace it)")
        return out
    lock_path = models_dir / ".staging" / f"{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise PullError(f"another `qwen-tray model pull` of {name} is running; wait for it to finish") from None
    try:
        return _pull_locked(model_id, source_kind, models_dir, name, out, options, check_memory, say)
    finally:
        lock.release()
        with contextlib.suppress(OSError):  # tidy when this was the only pull; harmless if another just started
            lock_path.unlink()
            lock_path.parent.rmdir()


def _pull_locked(model_id: str, source_kind: str, models_dir: Path, name: str, out: Path, options: ExportOptions,
                 check_memory: bool, say: Say) -> Path:
    source = make_source(source_kind, model_id)
    try:
        files = _wanted(source.list_files())
    except HubError as exc:
        raise PullError(str(exc)) from None
    kind = classify(files)
    if kind == "ir" and options.weight_format not in ("int4", "int8"):
        raise PullError(f"an OpenVINO IR is compressed to int4 or int8 here, not {options.weight_format}: "
                        "pull a PyTorch checkpoint for that, or use `qwen-tray model export`")
    if kind == "checkpoint":
        from .export import require_export_extra

        require_export_extra()  # before downloading gigabytes the export could not use
    staging = models_dir / ".staging" / name
    _stage_for(staging, source)
    download = staging / "download"
    say(f"{model_id} on {source.label} ({source.revision[:12]}): {len(files)} files, "
        f"{gb(sum(f.size or 0 for f in files))}")

    # The download alone must fit before anything is fetched; the output is checked once the kind is known,
    # still before the weights are downloaded.
    check_resources(Plan(kind, files, _remaining(files, download), 0, 0), shutil.disk_usage(models_dir).free,
                    None, models_dir)
    if kind == "ir":
        small = [f for f in files if not f.path.endswith(".bin")]
        _fetch_all(source, small, download, say)
        info = read_ir_weights(download / LANGUAGE_MODEL_XML)
        ready, why = info.npu_ready()
        kind = "ir-ready" if ready and is_npu_options(options) else "ir-compress"
        say(f"source: OpenVINO IR, language model {info.label()} ({why})")
    plan = make_plan(kind, files, download)
    say(f"plan: {plan.describe()}; {gb(plan.download_bytes)} to download"
        + (f", peak memory about {gb(plan.peak_memory)}" if plan.peak_memory else ""))
    check_resources(plan, shutil.disk_usage(models_dir).free, free_memory_bytes(), models_dir, check_memory)
    _fetch_all(source, files, download, say)
    shutil.rmtree(download / ".cache", ignore_errors=True)  # the hub client's resume notes

    if plan.kind == "ir-ready":
        result = download
    elif plan.kind == "ir-compress":
        say(f"compressing to {options.weight_format} with NNCF (data-free, on the OpenVINO model)")
        comp = CompressOptions(group_size=options.group_size, ratio=options.ratio, sym=options.sym,
                               bits=8 if options.weight_format == "int8" else 4, all_layers=options.lm_head == "int4")
        result = compress_ir(download, staging / "out", comp, log=say)
    else:
        from .export import export_model

        say(f"exporting with optimum-intel ({options.weight_format}, sym={options.sym}, group {options.group_size})")
        result = export_model(download, staging / "out", options, source_label=model_id)

    check_model_dir(result)
    fmt = model_format(result)
    if is_npu_options(options) and not fmt.npu_ready:
        raise PullError(f"the pulled model is not NPU-ready ({fmt.why}); it was not put in the store")
    meta = {"source": f"{source_kind}:{model_id}", "revision": source.revision, "path": plan.kind,
            "weight_format": fmt.label, "npu_ready": fmt.npu_ready}
    (result / "qwen-tray.json").write_text(json.dumps(meta, indent=2) + "\n")
    _install(result, out, staging)
    shutil.rmtree(staging, ignore_errors=True)
    return out
