"""A minimal stand-in for the Hugging Face hub's HTTP API, serving a local folder on loopback.

Why: `qwen-tray model pull` must be tested end to end (download with progress, export,
store) on machines with no internet. huggingface_hub honours HF_ENDPOINT, so pointing
it here exercises the real client code against real HTTP.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

COMMIT = "0" * 40


def _handler(repo_id: str, folder: Path) -> type[BaseHTTPRequestHandler]:
    files = {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, body: bytes, ctype: str, extra: dict[str, str] | None = None, head: bool = False) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _route(self, head: bool) -> None:
            path = unquote(self.path.split("?")[0])
            info_prefix = f"/api/models/{repo_id}"
            file_prefix = f"/{repo_id}/resolve/"
            if path.startswith(info_prefix):
                info = {"id": repo_id, "modelId": repo_id, "sha": COMMIT, "private": False,
                        "siblings": [{"rfilename": n} for n in files]}
                self._send(json.dumps(info).encode(), "application/json", head=head)
            elif path.startswith(file_prefix):
                name = path[len(file_prefix):].split("/", 1)[1]
                if name not in files:
                    self.send_error(404)
                    return
                data = files[name].read_bytes()
                etag = f'"{hashlib.sha256(data).hexdigest()}"'
                self._send(data, "application/octet-stream", {"ETag": etag, "X-Repo-Commit": COMMIT}, head=head)
            else:
                self.send_error(404)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._route(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._route(head=True)

    return Handler


@contextmanager
def fake_hub(repo_id: str, folder: Path) -> Iterator[str]:
    """Serve `folder` as model `repo_id`; yields the endpoint URL for HF_ENDPOINT."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(repo_id, folder))
    thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
