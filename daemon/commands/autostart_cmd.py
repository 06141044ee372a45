"""`qwen-tray autostart on|off|status [--headless]`: start at login, or not, and say what is registered."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from .. import autostart
from ..autostart import AutostartError, AutostartStatus
from . import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("autostart", help="start qwen-tray at login (on), stop doing so (off), or show it (status)")
    p.add_argument("action", choices=("on", "off", "status"))
    p.add_argument("--headless", action="store_true",
                   help="with on: start the service without tray or hotkey (Linux: a systemd user unit)")
    p.add_argument("--json", action="store_true", help="print the status as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.headless and args.action != "on":
        raise UserError("--headless only goes with `autostart on`")
    config = Path(args.config).expanduser() if getattr(args, "config", None) else None
    try:
        if args.action == "on":
            st = autostart.enable(headless=args.headless, config_file=config)
        elif args.action == "off":
            st = autostart.disable()
        else:
            st = autostart.status()
    except AutostartError as exc:
        raise UserError(str(exc)) from None
    _print(st, args.json)
    if args.action == "on" and not st.enabled:
        return 1
    return 0


def _print(st: AutostartStatus, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(st)))
        return
    if st.enabled:
        print(f"autostart: on ({st.mode})")
    else:
        print("autostart: off")
    print(f"where:     {st.where}")
    if st.command:
        print(f"command:   {st.command}")
    if st.note:
        print(f"note:      {st.note}")
