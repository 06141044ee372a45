"""Run the qwen-tray CLI in a fresh process and report which of torch's stack got imported.

    python tests/pull_child.py [--no-torch] REPORT.json model pull ...

`--no-torch` makes torch, torchvision, transformers and optimum absent, as in a venv without
the `export` extra (a `None` entry in sys.modules: `import torch` raises ImportError and
`importlib.util.find_spec("torch")` returns None, which is what NNCF and optimum check).
Without it, torch stays installed and importable, and the report shows whether anything did.
"""

from __future__ import annotations

import json
import sys

STACK = ("torch", "torchvision", "transformers", "optimum")


def main() -> int:
    args = sys.argv[1:]
    blocked = args[:1] == ["--no-torch"]
    if blocked:
        args = args[1:]
        for name in STACK:
            sys.modules[name] = None  # type: ignore[assignment]
    report, argv = args[0], args[1:]
    from qwen_tray.cli import main as cli_main

    try:
        code = cli_main(argv)
    finally:
        imported = sorted({m.split(".")[0] for m, mod in sys.modules.items()
                           if mod is not None and m.split(".")[0] in STACK})
        with open(report, "w") as fh:
            json.dump({"imported": imported, "blocked": blocked}, fh)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
