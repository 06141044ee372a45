"""`qwen-tray model pull|export|list|verify`: get, convert, inspect and check models."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import threading
from pathlib import Path

from ..engine.export import LM_HEADS, WEIGHT_FORMATS, ExportOptions, export_model
from ..engine.ir_info import model_format
from ..engine.store import ModelNotFound, check_model_dir, list_models, missing_files, resolve_model
from ..paths import Paths, bundled_model_dir
from . import UserError, context, pipe_safe

# Kept in step with qwen_tray.engine.pull.DEFAULT_PULL_ID (not imported: `qwen-tray --help` stays light).
DEFAULT_PULL_ID = "OpenVINO/Qwen3-VL-4B-Instruct-fp16-ov"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="pull, export, list, remove or verify models")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION")
    msub.required = True

    pull = msub.add_parser(
        "pull", help="download a model into the store, NPU-ready (int4 sym): a ready IR as is, an fp16/int8 IR "
        "compressed with NNCF (no torch), a PyTorch checkpoint exported (needs the export extra)")
    pull.add_argument("model_id", nargs="?", default=DEFAULT_PULL_ID, help=f"hub id (default {DEFAULT_PULL_ID})")
    pull.add_argument("--source", choices=("hf", "modelscope"), default="hf", help="where to download from")
    pull.add_argument("--force", action="store_true", help="replace a model of the same name in the store")
    pull.add_argument("--ignore-memory-check", action="store_true",
                      help="compress or export even when less memory is free than the step is expected to need")
    _add_export_knobs(pull)
    pull.set_defaults(func=run_pull)

    exp = msub.add_parser("export", help="convert a local Hugging Face folder to OpenVINO IR")
    exp.add_argument("src", help="Hugging Face model folder (config.json, safetensors, tokenizer)")
    exp.add_argument("out", help="output folder for the OpenVINO IR")
    _add_export_knobs(exp)
    exp.set_defaults(func=run_export)

    ls = msub.add_parser("list", help="models in the store: size, weight format, NPU-ready, which one `run` uses")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=pipe_safe(run_list))

    rm = msub.add_parser("rm", help="remove a model (or an unfinished pull) from the store")
    rm.add_argument("name", help="the name `qwen-tray model list` shows")
    rm.set_defaults(func=run_rm)

    ver = msub.add_parser("verify", help="check a model folder: files, load, one short generation")
    ver.add_argument("dir", help="OpenVINO IR folder")
    ver.add_argument("--device", default="CPU", choices=("auto", "hybrid", "NPU", "GPU", "CPU"),
                     help="device to load on (default CPU); fails when the model ends up elsewhere")
    ver.add_argument("--backend", choices=("genai", "optimum"), default="genai")
    ver.set_defaults(func=pipe_safe(run_verify))


def _add_export_knobs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weight-format", choices=WEIGHT_FORMATS, default="int4")
    p.add_argument("--group-size", type=int, default=128, help="weights per quantisation group; -1 = per channel")
    p.add_argument("--ratio", type=float, default=1.0, help="share of layers in 4 bit (rest 8 bit); NPU needs 1.0")
    p.add_argument("--lm-head", choices=LM_HEADS, default="int8",
                   help="the LM head's precision (default int8, as NNCF keeps it); int4 with --group-size -1 "
                        "decoded ~15%% faster on CPU in our benchmark, quality unmeasured")
    sym = p.add_mutually_exclusive_group()
    sym.add_argument("--sym", dest="sym", action="store_true", default=True, help="symmetric (default; NPU needs it)")
    sym.add_argument("--asym", dest="sym", action="store_false", help="asymmetric")


def _options(args: argparse.Namespace) -> ExportOptions:
    opts = ExportOptions(weight_format=args.weight_format, sym=args.sym, group_size=args.group_size, ratio=args.ratio,
                         lm_head=args.lm_head)
    opts.validate()
    return opts


def run_export(args: argparse.Namespace) -> int:
    src, out = Path(args.src).expanduser(), Path(args.out).expanduser()
    if not (src / "config.json").is_file():
        raise UserError(f"{src} is not a Hugging Face model folder (no config.json)")
    opts = _options(args)
    print(f"exporting {src} -> {out} ({opts.weight_format}, {'sym' if opts.sym else 'asym'}, "
          f"group {opts.group_size}, ratio {opts.ratio}, LM head {opts.lm_head})", flush=True)
    export_model(src, out, opts)
    print(f"done: {out}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from ..engine.pull import PullError, pull

    paths, _ = context(args)
    opts = _options(args)
    paths.models_dir.mkdir(parents=True, exist_ok=True)
    try:
        out = pull(args.model_id, args.source, paths.models_dir, opts, force=args.force,
                   check_memory=not args.ignore_memory_check, say=lambda line: print(line, flush=True))
    except PullError as exc:
        raise UserError(str(exc)) from None
    print(f"done: {out}")
    return 0


def _rows(paths: Paths, configured: str) -> list[dict]:
    """Every store model plus the demo model, with format, NPU readiness and which one `run` uses."""
    try:
        in_use, _ = resolve_model(configured, paths)
    except ModelNotFound:
        in_use = None
    models = [(m.name, m.path, m.complete, m.size_bytes, m.source, False) for m in list_models(paths)]
    demo = bundled_model_dir()
    models.append(("(demo model)", demo, not missing_files(demo), _size(demo), "bundled, random weights", True))
    if configured and in_use is not None and all(p != in_use for _, p, *_ in models):
        models.append(("(model.path)", in_use, True, _size(in_use), "config model.path", False))
    rows = []
    for name, path, complete, size, source, is_demo in models:
        fmt = model_format(path)
        rows.append({"name": name, "path": str(path), "complete": complete, "size_bytes": size, "source": source,
                     "weight_format": fmt.label, "npu_ready": fmt.npu_ready, "npu_why": fmt.why, "demo": is_demo,
                     "in_use": in_use is not None and path == in_use})
    return rows


def _human(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def run_list(args: argparse.Namespace) -> int:
    paths, cfg = context(args)
    rows = _rows(paths, cfg.model.path)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'':2}{'NAME':<34} {'SIZE':>9}  {'WEIGHTS':<36} {'NPU':<4} SOURCE")
    for r in rows:
        mark = "* " if r["in_use"] else "  "
        npu = ("yes" if r["npu_ready"] else "no") if r["complete"] else "-"
        fmt = r["weight_format"] if r["complete"] else "incomplete"
        print(f"{mark}{r['name']:<34} {_human(r['size_bytes']):>9}  {fmt:<36} {npu:<4} {r['source']}")
    if not any(not r["demo"] for r in rows):
        print(f"no models in {paths.models_dir}: run `qwen-tray model pull`")
    print("* = the model `qwen-tray run` uses" + (" (the demo model answers with noise)"
                                                 if any(r["in_use"] and r["demo"] for r in rows) else ""))
    partial = paths.models_dir / ".staging"
    unfinished = sorted(p.name for p in partial.iterdir() if p.is_dir()) if partial.is_dir() else []
    if unfinished:
        names = ", ".join(unfinished)
        print(f"unfinished pulls ({names}): run the same `qwen-tray model pull` to resume, "
              "or `qwen-tray model rm NAME` to drop them")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    paths, cfg = context(args)
    name = args.name
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise UserError(f"{name!r} is not a model name: see `qwen-tray model list`")
    target, staged = paths.models_dir / name, paths.models_dir / ".staging" / name
    if not target.is_dir() and not staged.is_dir():
        raise UserError(f"no model named {name} in {paths.models_dir}: see `qwen-tray model list`")
    freed = _size(target) + _size(staged)
    if cfg.model.path and target.is_dir() and Path(cfg.model.path).expanduser().resolve() == target.resolve():
        print(f"note: the config's model.path points at {target}; `qwen-tray run` will not start until you change it")
    for d in (target, staged):
        if d.is_dir():
            shutil.rmtree(d)
    print(f"removed {name} ({_human(freed)} freed)")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Files, weight format, load on the device asked for, one short generation.

    Non-zero (1) when the model loaded somewhere other than the device asked for: `load_engine`
    falls back (NPU -> GPU -> CPU) so the daemon always answers, but a check must not pass on CPU
    when the question was "does this run on the NPU?".
    """
    from PIL import Image

    from ..engine.base import GenerationOptions, Message
    from ..engine.loader import load_engine
    from ..service import placement_settings

    paths, cfg = context(args)
    model_dir = check_model_dir(Path(args.dir))
    print(f"files: complete ({model_dir})")
    fmt = model_format(model_dir)
    print(f"weights: {fmt.label} ({'NPU-ready' if fmt.npu_ready else 'not NPU-ready'}: {fmt.why})")
    # The config's device settings (NPU prompt length, hints), but no compile cache: a check compiles for real
    # and leaves nothing behind.
    settings = dataclasses.replace(placement_settings(paths, cfg), cache_dir="")
    engine = load_engine(model_dir, args.backend, args.device, settings)
    placement = engine.placement
    try:
        image = Image.new("RGB", (64, 64), (90, 140, 200))
        result = engine.generate(
            [Message("user", "Describe this image.", [image])],
            GenerationOptions(max_new_tokens=8),
            lambda _chunk: None,
            threading.Event(),
        )
    finally:
        engine.close()
    wanted = args.device
    on_wanted = wanted == "auto" or placement.name == wanted
    if on_wanted:
        print(f"load: ok on {placement.summary()}")
    else:
        print(f"load: asked for {wanted}, loaded on {placement.summary()} instead")
    f = result.figures
    print(f"generate: ok, {f.completion_tokens} tokens, ttft {f.ttft_ms:.0f} ms, {f.tokens_per_s:.1f} tokens/s")
    if not on_wanted:
        raise UserError(f"the model did not load on {wanted}: it runs on {placement.summary()} because "
                        f"{placement.reason}", exit_code=1)
    if wanted in ("NPU", "hybrid") and not fmt.npu_ready:
        raise UserError(f"the model loaded on {wanted} but its weights are not NPU-ready ({fmt.why}): "
                        "pull it again with the default settings", exit_code=1)
    return 0
