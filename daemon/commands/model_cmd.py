"""`qwen-tray model pull|export|list|verify`: get, convert, inspect and check models."""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
from pathlib import Path

from ..engine.export import WEIGHT_FORMATS, ExportOptions, export_model
from ..engine.store import DEFAULT_MODEL_ID, check_model_dir, list_models, missing_files, store_name
from . import UserError, context


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="pull, export, list or verify models")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION")
    msub.required = True

    pull = msub.add_parser("pull", help="download a model and export it int4 (NPU-ready) into the store")
    pull.add_argument("model_id", nargs="?", default=DEFAULT_MODEL_ID, help=f"hub id (default {DEFAULT_MODEL_ID})")
    pull.add_argument("--source", choices=("hf", "modelscope"), default="hf", help="where to download from")
    pull.add_argument("--force", action="store_true", help="replace a model of the same name in the store")
    _add_export_knobs(pull)
    pull.set_defaults(func=run_pull)

    exp = msub.add_parser("export", help="convert a local Hugging Face folder to OpenVINO IR")
    exp.add_argument("src", help="Hugging Face model folder (config.json, safetensors, tokenizer)")
    exp.add_argument("out", help="output folder for the OpenVINO IR")
    _add_export_knobs(exp)
    exp.set_defaults(func=run_export)

    ls = msub.add_parser("list", help="models in the store")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)

    ver = msub.add_parser("verify", help="check a model folder: files, load, one short generation")
    ver.add_argument("dir", help="OpenVINO IR folder")
    ver.add_argument("--device", default="CPU", help="device to load on (default CPU)")
    ver.add_argument("--backend", choices=("genai", "optimum"), default="genai")
    ver.set_defaults(func=run_verify)


def _add_export_knobs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weight-format", choices=WEIGHT_FORMATS, default="int4")
    p.add_argument("--group-size", type=int, default=128, help="weights per quantisation group; -1 = per channel")
    p.add_argument("--ratio", type=float, default=1.0, help="share of layers in 4 bit (rest 8 bit); NPU needs 1.0")
    sym = p.add_mutually_exclusive_group()
    sym.add_argument("--sym", dest="sym", action="store_true", default=True, help="symmetric (default; NPU needs it)")
    sym.add_argument("--asym", dest="sym", action="store_false", help="asymmetric")


def _options(args: argparse.Namespace) -> ExportOptions:
    opts = ExportOptions(weight_format=args.weight_format, sym=args.sym, group_size=args.group_size, ratio=args.ratio)
    opts.validate()
    return opts


def run_export(args: argparse.Namespace) -> int:
    src, out = Path(args.src).expanduser(), Path(args.out).expanduser()
    if not (src / "config.json").is_file():
        raise UserError(f"{src} is not a Hugging Face model folder (no config.json)")
    opts = _options(args)
    print(f"exporting {src} -> {out} ({opts.weight_format}, {'sym' if opts.sym else 'asym'}, "
          f"group {opts.group_size}, ratio {opts.ratio})", flush=True)
    export_model(src, out, opts)
    print(f"done: {out}")
    return 0


def _download_hf(model_id: str, dest: Path) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        snapshot_download(model_id, local_dir=str(dest))  # shows tqdm progress bars
    except RepositoryNotFoundError:
        raise UserError(f"{model_id} was not found on the Hugging Face hub: check the id") from None
    except (LocalEntryNotFoundError, OSError, HfHubHTTPError) as exc:
        raise UserError(
            f"could not download {model_id} from the Hugging Face hub ({type(exc).__name__}): you seem to be offline; "
            "download the model folder on another machine, copy it here and run `qwen-tray model export SRC OUT`"
        ) from None


def _download_modelscope(model_id: str, dest: Path) -> None:
    try:
        from modelscope import snapshot_download
    except ImportError:
        raise UserError(
            "--source modelscope needs the modelscope package: pip install 'qwen-tray[modelscope]'"
        ) from None
    try:
        snapshot_download(model_id, local_dir=str(dest))
    except Exception as exc:  # noqa: BLE001 - modelscope raises plain exceptions for network failures
        raise UserError(
            f"could not download {model_id} from ModelScope ({type(exc).__name__}): you seem to be offline; "
            "copy the model folder here and run `qwen-tray model export SRC OUT`"
        ) from None


def run_pull(args: argparse.Namespace) -> int:
    paths, _ = context(args)
    opts = _options(args)
    name = store_name(args.model_id, opts.weight_format)
    out = paths.models_dir / name
    if out.exists() and not missing_files(out) and not args.force:
        print(f"{name} is already in the store at {out} (use --force to replace it)")
        return 0
    paths.models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=paths.models_dir) as tmp:
        dl = Path(tmp) / "hf"
        print(f"downloading {args.model_id} from {'Hugging Face' if args.source == 'hf' else 'ModelScope'}", flush=True)
        (_download_hf if args.source == "hf" else _download_modelscope)(args.model_id, dl)
        print(f"exporting to OpenVINO IR ({opts.weight_format}, sym={opts.sym}, group {opts.group_size})", flush=True)
        export_model(dl, out, opts, source_label=args.model_id)
    meta = {"source": f"{args.source}:{args.model_id}", "weight_format": opts.weight_format, "sym": opts.sym,
            "group_size": opts.group_size, "ratio": opts.ratio}
    (out / "qwen-tray.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"done: {out}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    paths, _ = context(args)
    models = list_models(paths)
    if args.json:
        print(json.dumps([{"name": m.name, "path": str(m.path), "complete": m.complete, "size_bytes": m.size_bytes,
                           "source": m.source} for m in models], indent=2))
        return 0
    if not models:
        print(f"no models in {paths.models_dir} (run `qwen-tray model pull`)")
        return 0
    for m in models:
        state = "ok" if m.complete else "incomplete"
        print(f"{m.name:<40} {m.size_bytes / 1e9:6.2f} GB  {state:<10} {m.source}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..engine.base import GenerationOptions, Message
    from ..engine.loader import load_engine
    from ..engine.placement import PlacementSettings

    model_dir = check_model_dir(Path(args.dir))
    print(f"files: complete ({model_dir})")
    engine = load_engine(model_dir, args.backend, args.device, PlacementSettings())
    print(f"load: ok on {engine.placement.summary()}")
    image = Image.new("RGB", (64, 64), (90, 140, 200))
    result = engine.generate(
        [Message("user", "Describe this image.", [image])],
        GenerationOptions(max_new_tokens=8),
        lambda _chunk: None,
        threading.Event(),
    )
    f = result.figures
    print(f"generate: ok, {f.completion_tokens} tokens, ttft {f.ttft_ms:.0f} ms, {f.tokens_per_s:.1f} tokens/s")
    engine.close()
    return 0


