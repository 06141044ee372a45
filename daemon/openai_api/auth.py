"""Who may use the HTTP API: a bearer key, a loopback Host, and no foreign web page.

- The key is made once (`secrets.token_urlsafe`) into a file only the user can read, kept across
  restarts so configured apps keep working; `qwen-tray api-key` prints it.
- `Host` must be 127.0.0.1, localhost or [::1] with our port: a web page that rebinds its own
  DNS name to 127.0.0.1 still sends its own name, and is refused (DNS rebinding).
- A request with an `Origin` header comes from a browser page; refused unless that origin is in
  `[http] allowed_origins`. No CORS headers are ever sent, so a browser will not expose an answer
  to a page anyway; the check also stops "simple" requests that a browser sends without preflight.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from pathlib import Path

from qwen_tray.connection_file import restrict_to_user

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def ensure_api_key(path: Path) -> str:
    """The key in `path`, made (user-only, atomically) if the file is missing or empty."""
    path = Path(path)
    try:
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = "qt-" + secrets.token_urlsafe(32)
    fd, tmp_name = tempfile.mkstemp(prefix=".api-key-", dir=path.parent)  # 0600 on POSIX
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            restrict_to_user(tmp)  # before the key is in it
            f.write(key + "\n")
        try:  # never replace a key another process (the daemon, `qwen-tray api-key`) has just made
            os.link(tmp, path)
        except FileExistsError:
            return read_api_key(path) or key
        except OSError:  # a file system without hard links
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return key


def read_api_key(path: Path) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


class Gate:
    """The three checks, in the order a request meets them; each returns None or (status, message)."""

    def __init__(self, key: str, port: int, allowed_origins: list[str]) -> None:
        self._key = key.encode("utf-8")
        self.port = port
        self._hosts = {f"{h}:{port}" for h in LOOPBACK_HOSTS}
        self._origins = set(allowed_origins)

    def host(self, value: str | None) -> str | None:
        if value is None or value.lower() not in self._hosts:
            return (f"the Host header must be 127.0.0.1:{self.port} or localhost:{self.port} "
                    "(this API serves this computer's programs only)")
        return None

    def origin(self, value: str | None) -> str | None:
        if value is not None and value not in self._origins:
            return (f"requests from web pages are refused (Origin {value[:100]!r}); "
                    "allow an origin in the config's [http] allowed_origins")
        return None

    def key(self, authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "an API key is required: Authorization: Bearer <key> (`qwen-tray api-key` prints it)"
        if not hmac.compare_digest(token.strip().encode("utf-8"), self._key):
            return "the API key is wrong (`qwen-tray api-key` prints the right one)"
        return None
