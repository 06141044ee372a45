"""`qwen-tray autostart on|off|status [--headless]`: start at login, or not, and say what is registered."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from .. import autostart
from ..autostart import AutostartError, AutostartStatus
from . import UserError, config_override, pipe_safe


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("autostart", help="start qwen-tray at login (on), stop doing so (off), or show it (status)")
    p.add_argument("action", choices=("on", "off", "status"))
    p.add_argument("--headless", action="store_true",
                   help="with on: start the service without tray or hotkey (Linux: a systemd user unit)")
    p.add_argument("--force", action="store_true",
                   help="with on: replace an autostart of the other kind (tray <-> headless)")
    p.add_argument("--json", action="store_true", help="print the status as one JSON object")
    p.set_defaults(func=pipe_safe(run))


def run(args: argparse.Namespace) -> int:
    for flag in ("headless", "force"):
        if getattr(args, flag) and args.action != "on":
            raise UserError(f"--{flag} only goes with `autostart on`")
    config = config_override(args)
    try:
        if args.action == "on":
            _refuse_silent_switch(autostart.status(), args.headless, args.force)
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


def _refuse_silent_switch(current: AutostartStatus, headless: bool, force: bool) -> None:
    """One mode at a time: turning one on removes the other, so that must be asked for, not a side effect."""
    wanted = "headless" if headless else "tray"
    if current.enabled and current.mode and current.mode != wanted and not force:
        label = {"tray": "the tray", "headless": "the headless service"}
        flags = " --headless" if headless else ""
        raise UserError(
            f"autostart is already on for {label.get(current.mode, current.mode)} ({current.where}); "
            f"`qwen-tray autostart on{flags} --force` replaces it with {label[wanted]}", exit_code=1,
        )


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
