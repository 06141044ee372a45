"""`python -m daemon` is `qwen-tray`."""

import sys

from .cli import main

sys.exit(main())
