"""`qwen-tray api-key`: the HTTP API's bearer key (made now if the daemon never ran), and where it is."""

from __future__ import annotations

import argparse
import sys

from . import context


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api-key", help="print the key for the OpenAI-compatible HTTP API")
    p.add_argument("--path", action="store_true", help="print the key file's path instead of the key")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..openai_api.auth import ensure_api_key

    paths, cfg = context(args)
    if args.path:
        print(paths.api_key_file)
        return 0
    print(ensure_api_key(paths.api_key_file))
    if sys.stderr.isatty():
        print(f"(from {paths.api_key_file}; base URL http://127.0.0.1:{cfg.http.port}/v1)", file=sys.stderr)
    return 0
