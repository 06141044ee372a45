"""A minimal stand-in for the Hugging Face hub's HTTP API, serving local folders on loopback.

Why: `qwen-tray model pull` must be tested end to end (file list with sizes and hashes,
resumable download, verification, compression or export, store) on machines with no
internet. huggingface_hub honours HF_ENDPOINT, so pointing it here exercises the real
client code against real HTTP.

What it speaks: `GET /api/models/{repo}[/revision/{rev}]?blobs=true` (siblings with size,
git blob id and, for weight files, LFS sha256 and size), `HEAD`/`GET /{repo}/resolve/{rev}/{file}`
with `Range: bytes=N-` (206 + Content-Range), as the hub does. Faults a laptop on bad Wi-Fi meets,
each once per file: `drop_halfway` sends the headers of the whole file, half the body, then
closes the connection; `stall_halfway` sends half and then waits (until the server stops) so a
test can interrupt the client mid-file; `corrupt` serves bytes that differ from the published
sha256; `claimed_size` publishes a size other than the real one (e.g. larger than the free disk).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

COMMIT = "0" * 40
LFS_SUFFIXES = (".bin", ".safetensors")  # stored with Git LFS on the hub: the listing carries their sha256


def git_blob_sha1(data: bytes) -> str:
    """The git object id the hub lists for every file (`blobId`)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Hub:
    """The running stand-in: its URL, what it serves, the faults to inject and what it was asked."""

    url: str
    repos: dict[str, Path]
    drop_halfway: set[str] = field(default_factory=set)
    stall_halfway: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    claimed_size: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Range header)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def files(self, repo: str) -> dict[str, Path]:
        folder = self.repos[repo]
        return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}

    def gets(self, name: str) -> list[str]:
        """The Range header of every GET of file `name` ('' when none), in order."""
        return [rng for method, path, rng in self.requests if method == "GET" and path.endswith("/" + name)]


def _sibling(hub: Hub, name: str, path: Path) -> dict:
    data = path.read_bytes()
    size = hub.claimed_size.get(name, len(data))
    entry: dict = {"rfilename": name, "size": size, "blobId": git_blob_sha1(data)}
    if name.endswith(LFS_SUFFIXES):
        entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": size, "pointerSize": 134}
    return entry


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _headers(self, status: int, length: int, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()

        def _json(self, obj: object, head: bool) -> None:
            body = json.dumps(obj).encode()
            self._headers(200, len(body), "application/json")
            if not head:
                self.wfile.write(body)

        def _repo_of(self, path: str, marker: str) -> tuple[str, str] | None:
            for repo in hub.repos:
                prefix = f"/{repo}/{marker}/" if marker else f"/api/models/{repo}"
                if path.startswith(prefix):
                    return repo, path[len(prefix):]
            return None

        def _info(self, repo: str, head: bool) -> None:
            siblings = [_sibling(hub, n, p) for n, p in hub.files(repo).items()]
            self._json({"id": repo, "modelId": repo, "sha": COMMIT, "private": False, "siblings": siblings}, head)

        def _file(self, repo: str, name: str, head: bool) -> None:
            files = hub.files(repo)
            if name not in files:
                self.send_error(404)
                return
            data = files[name].read_bytes()
            etag = hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else git_blob_sha1(data)
            extra = {"ETag": f'"{etag}"', "X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes"}
            if head:
                self._headers(200, hub.claimed_size.get(name, len(data)), "application/octet-stream", extra)
                return
            with hub.lock:
                corrupt = name in hub.corrupt
                drop = name in hub.drop_halfway
                stall = name in hub.stall_halfway
                hub.drop_halfway.discard(name)
                hub.stall_halfway.discard(name)
            if corrupt:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])  # same size, different bytes
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                extra["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            self._headers(206 if match else 200, len(body), "application/octet-stream", extra)
            if drop or stall:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                if stall:
                    hub.stop.wait(60)
                self.close_connection = True
                return
            self.wfile.write(body)

        def _route(self, head: bool) -> None:
            path = unquote(self.path.split("?")[0])
            with hub.lock:
                hub.requests.append(("HEAD" if head else "GET", path, self.headers.get("Range", "")))
            if found := self._repo_of(path, "resolve"):
                repo, rest = found
                self._file(repo, rest.split("/", 1)[1] if "/" in rest else "", head)
            elif (found := self._repo_of(path, "")) and found[1] in ("", f"/revision/{COMMIT}", "/revision/main"):
                self._info(found[0], head)
            else:
                self.send_error(404)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._route(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._route(head=True)

    return Handler


@contextmanager
def fake_hub(repos: dict[str, Path] | str, folder: Path | None = None) -> Iterator[Hub]:
    """Serve each folder as a model repo (`{repo_id: folder}`, or one `repo_id, folder`); yields the Hub.

    Point HF_ENDPOINT at `hub.url` (and set HF_HUB_DISABLE_XET=1: the stand-in has no Xet storage).
    """
    mapping = {repos: Path(folder)} if isinstance(repos, str) and folder is not None else dict(repos)  # type: ignore[arg-type]
    hub = Hub(url="", repos=mapping)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        hub.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
