"""`python -m qwen_tray` is `qwen-tray`."""

import sys

from . import privacy  # noqa: F401 - OpenVINO telemetry off before anything imports openvino
from .cli import main

sys.exit(main())
