"""The optional question-and-answer history (config `ui.history`, off by default).

Why a separate, opt-in file: by default nothing of the screen, no question and
no answer is stored anywhere. A user who wants a record turns it on and gets one
JSON object per answered question in a file only they can read. Images are
never stored, only their size.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class History:
    """Appends one JSON line per finished answer to `path` (created 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def record(self, question: str, answer: str, finish_reason: str, image_size: tuple[int, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "question": question,
            "answer": answer,
            "finish_reason": finish_reason,
            "image": {"width": image_size[0], "height": image_size[1]},
        }, ensure_ascii=False)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def history_file(data_dir: Path) -> Path:
    return Path(data_dir) / "history.jsonl"
