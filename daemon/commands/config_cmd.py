"""`qwen-tray config`: the effective configuration and every path the program uses."""

from __future__ import annotations

import argparse
import json

from ..config import to_toml
from . import context, pipe_safe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the effective config and the paths in use")
    p.add_argument("--json", action="store_true", help="one JSON object instead of TOML")
    p.set_defaults(func=pipe_safe(run))


def run(args: argparse.Namespace) -> int:
    paths, cfg = context(args)
    exists = paths.config_file.exists()
    if args.json:
        print(json.dumps({"paths": paths.as_dict(), "config_file_exists": exists, "config": cfg.as_dict()}, indent=2))
        return 0
    print("# paths")
    for key, value in paths.as_dict().items():
        print(f"# {key:<11} {value}")
    print(f"# config file {'found' if exists else 'not found: all defaults'}")
    print()
    print(to_toml(cfg), end="")
    return 0
