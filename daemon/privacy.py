"""OpenVINO's usage telemetry stays off in every qwen-tray process; imported before `openvino`.

Why: `import openvino` initialises openvino-telemetry, which (with no consent file)
writes `~/intel/openvino_ga_cid` and `~/intel/stats` and sends a usage event to an
analytics service from a background process. A screen assistant must not phone out.

How, without patching the package: openvino and nncf create their `Telemetry` with
`disable_in_ci=True`, and openvino-telemetry then declines consent (no file read or
written, nothing sent) whenever the process looks like a CI job. Of the variables it
reads for that (`CI`, `TF_BUILD`, `JENKINS_URL`), `TF_BUILD` is the one no other
package we load acts on (`CI=true` changes transformers' logging, pip and pytest).
The documented `opt_in_out --opt_out` is no use here: it writes a consent file into
`~/intel` itself. `tests/test_privacy.py` checks the effect end to end (fresh HOME,
a daemon answering, then no `~/intel` and no connection but loopback).

`daemon/__init__.py` imports this module, so anything that imports `daemon` (the
CLI, `python -m qwen_tray`, the bench workers, tests) has telemetry off before
OpenVINO loads. Child processes inherit the variable.
"""

from __future__ import annotations

import os

# The variable and value openvino-telemetry reads as "running in CI" (opt_in_checker._run_in_ci).
TELEMETRY_OFF_ENV = ("TF_BUILD", "True")


def telemetry_off() -> None:
    """Make openvino-telemetry decline consent in this process and its children (idempotent)."""
    name, value = TELEMETRY_OFF_ENV
    if not os.environ.get(name):
        os.environ[name] = value


telemetry_off()
