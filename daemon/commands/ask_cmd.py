"""`qwen-tray ask`: one question, streamed to stdout.

With `--model` it loads the engine in this process (no daemon needed); without,
it asks the running daemon over its local socket.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from pathlib import Path

from ..engine.base import GenerationOptions, Message
from ..safetext import printable
from . import UserError, context, pipe_safe

DEMO_MARK = ("qwen-tray: [demo model] this answer is from the bundled tiny demo model (it only names an image's "
             "main colour); `qwen-tray model pull` gets Qwen3-VL")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="ask a question (about an image) and stream the answer")
    p.add_argument("question", help="the question")
    p.add_argument("--image", action="append", default=[], metavar="PATH", help="an image file (repeatable)")
    p.add_argument("--model", metavar="DIR", help="load this OpenVINO model in-process instead of asking the daemon")
    p.add_argument("--backend", choices=("genai", "optimum"), help="engine backend (only with --model)")
    p.add_argument("--device", choices=("auto", "hybrid", "NPU", "GPU", "CPU"), help="device (only with --model)")
    p.add_argument("--max-new-tokens", type=int, help="longest answer in tokens")
    p.add_argument("--temperature", type=float, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float)
    p.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop at this text (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of streaming")
    p.set_defaults(func=pipe_safe(run))


def _options(args: argparse.Namespace, defaults: GenerationOptions) -> GenerationOptions:
    opts = GenerationOptions(
        max_new_tokens=args.max_new_tokens if args.max_new_tokens is not None else defaults.max_new_tokens,
        temperature=args.temperature if args.temperature is not None else defaults.temperature,
        top_p=args.top_p if args.top_p is not None else defaults.top_p,
        stop=tuple(args.stop) or defaults.stop,
    )
    if opts.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be at least 1")
    if opts.temperature < 0:
        raise UserError("--temperature must be 0 or more")
    if not 0 < opts.top_p <= 1:
        raise UserError("--top-p must be in (0, 1]")
    return opts


def run(args: argparse.Namespace) -> int:
    if not args.question.strip():
        raise UserError("the question is empty: say what you want to know")
    if args.model is None:
        given = [f"--{name}" for name in ("device", "backend") if getattr(args, name)]
        if given:
            raise UserError(
                f"{' and '.join(given)} only apply with --model (a model loaded in this process); the running "
                "daemon uses model.device and model.backend from its config (`qwen-tray config`)"
            )
        return _ask_daemon(args)
    return _ask_in_process(args)


def _check_images(args: argparse.Namespace) -> list[bytes]:
    """Each --image read and checked here first, so an error names the file and nothing is sent for a bad one."""
    from ..images import load_image_file

    _, cfg = context(args)
    blobs = []
    for p in args.image:
        load_image_file(Path(p), max_bytes=cfg.image.max_bytes, max_pixels=cfg.image.max_pixels)
        blobs.append(Path(p).read_bytes())  # sent as is: the daemon decodes and checks it again
    return blobs


def _name_images(message: str, files: list[str]) -> str:
    """The daemon names images by protocol position ("messages[0].content[0] (blob 1)"): say the file instead."""
    def file_for(m: re.Match) -> str:
        i = int(m.group(1))
        return files[i] if i < len(files) else m.group(0)

    return re.sub(r"messages\[\d+\]\.content\[\d+\] \(blob (\d+)\)", file_for, message)


def _write(text: str) -> None:
    sys.stdout.write(printable(text))
    sys.stdout.flush()


def _ask_daemon(args: argparse.Namespace) -> int:
    from qwen_tray_client.client import Client, ClientError, ConnectionFileError, GenerationFailed, RequestRejected

    _options(args, GenerationOptions())  # the same flag checks as in-process; the daemon applies its defaults
    options: dict = {k: v for k, v in (("max_new_tokens", args.max_new_tokens), ("temperature", args.temperature),
                                       ("top_p", args.top_p)) if v is not None}
    if args.stop:
        options["stop"] = list(args.stop)
    images = _check_images(args)
    paths, _ = context(args)
    try:
        client = Client(paths.connection_file)
    except ConnectionFileError as exc:
        raise UserError(f"{exc}; or pass --model DIR to load a model in this process", exit_code=3) from None
    with client:
        try:
            answer = client.ask(images, args.question, **options)
        except RequestRejected as exc:
            raise UserError(f"the daemon refused the question ({exc.code}): "
                            f"{_name_images(exc.message, args.image)}") from None
        except ClientError as exc:
            raise UserError(str(exc), exit_code=3) from None
        try:
            try:
                for chunk in answer:
                    if not args.json:
                        _write(chunk)
            except BrokenPipeError:  # the reader went away (`| head`): stop the generation too
                answer.close()  # leaving the loop cancels it on the daemon (idempotent)
                raise
            except KeyboardInterrupt:  # stop the generation, not just this process
                answer.close()
                if not args.json:
                    print()
                print("qwen-tray: cancelled", file=sys.stderr)
                return 130
        except GenerationFailed as exc:
            if not args.json:
                print()
            raise UserError(f"the answer failed ({exc.code}): {exc.message}", exit_code=1) from None
        except ClientError as exc:
            raise UserError(str(exc), exit_code=3) from None
    if args.json:
        print(json.dumps(answer.result))
    else:
        print()
        if answer.result.get("demo"):
            print(DEMO_MARK, file=sys.stderr)
    return 0


def _ask_in_process(args: argparse.Namespace) -> int:
    from ..engine.image_budget import budget_for, fit_image
    from ..engine.loader import load_engine
    from ..images import load_image_file
    from ..paths import bundled_model_dir
    from ..service import placement_settings

    paths, cfg = context(args)
    g = cfg.generation
    opts = _options(args, GenerationOptions(g.max_new_tokens, g.temperature, g.top_p, tuple(g.stop)))
    images = [load_image_file(Path(p), max_bytes=cfg.image.max_bytes, max_pixels=cfg.image.max_pixels)
              for p in args.image]
    engine = load_engine(
        Path(args.model),
        args.backend or cfg.model.backend,
        args.device or cfg.model.device,
        placement_settings(paths, cfg),
    )
    per_image = budget_for(
        engine.placement.language_device == "NPU", cfg.image.max_tokens, cfg.image.default_tokens,
        cfg.npu.max_prompt_len, engine.count_text_tokens(args.question), len(images),
    )
    message = Message("user", args.question, [fit_image(i, per_image) for i in images])

    cancel = threading.Event()
    reader_gone = False

    def stream(chunk: str) -> None:
        nonlocal reader_gone
        if args.json or reader_gone:
            return
        try:
            _write(chunk)
        except BrokenPipeError:  # raised after generate returns; here it would land in the engine's thread
            reader_gone = True
            cancel.set()

    result = engine.generate([message], opts, stream, cancel)
    demo = _same_dir(Path(args.model), bundled_model_dir())
    if reader_gone:
        engine.close()
        raise BrokenPipeError
    if args.json:
        f = result.figures
        print(json.dumps({
            "text": result.text,
            "finish_reason": result.finish_reason,
            "usage": {"prompt_tokens": f.prompt_tokens, "completion_tokens": f.completion_tokens},
            "timings": {"ttft_ms": f.ttft_ms, "total_ms": f.total_ms, "tokens_per_s": f.tokens_per_s},
            "backend": engine.backend,
            "placement": engine.placement.as_dict(),
            "demo": demo,
        }))
    else:
        print()
        if demo:
            print(DEMO_MARK, file=sys.stderr)
    engine.close()
    return 0


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.expanduser().resolve() == b.resolve()
    except OSError:
        return False
