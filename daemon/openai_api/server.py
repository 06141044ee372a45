"""uvicorn on its own thread and event loop, bound to 127.0.0.1 only, with nothing ticking while idle.

We bind the socket ourselves (a taken port is an OSError for the caller, not uvicorn's
`sys.exit` on a thread) and hand it to uvicorn. uvicorn's `Server.main_loop` wakes every
100 ms to refresh its Date header and look at `should_exit`; `_QuietServer` replaces it with
one wait on an event that `stop()` sets from any thread, so the idle loop sleeps in epoll with
no timeout. The Date header is then added per response by the app (`app.DateHeader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """uvicorn.Server without the 10 Hz tick: `request_exit()` wakes the main loop instead."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock = threading.Lock()

    async def main_loop(self) -> None:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
        await self.on_tick(0)  # what uvicorn does once at start (default headers)
        if not self.should_exit:
            await self._wake.wait()

    def request_exit(self) -> None:
        with self._lock:
            self.should_exit = True
            if self._loop is not None and self._wake is not None:
                with contextlib.suppress(RuntimeError):  # the loop has already closed
                    self._loop.call_soon_threadsafe(self._wake.set)


class HttpServer:
    """Serve an ASGI app on http://127.0.0.1:<port>/ from a thread named qwen-tray-http."""

    def __init__(self, app: Any, port: int, *, graceful_s: float = 5.0) -> None:
        self.port = port
        self._sock: socket.socket | None = None
        self._config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False,
                                      server_header=False, date_header=False, proxy_headers=False,
                                      timeout_graceful_shutdown=int(graceful_s), ws="none",
                                      http="h11")  # pure Python, uvicorn's own dependency; no C parser
        self._server = _QuietServer(self._config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> str:
        """Bind (raises OSError when the port is taken) and serve on a new thread; returns the base URL."""
        # proto IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on accepted sockets whose proto
        # says TCP; with 0, a response written as head + body waits ~40 ms for the client's delayed ACK on
        # every kept-alive connection (measured: 46 ms -> ~4 ms for a text-only request)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: nobody may bind the same port beside us
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:  # POSIX: restart at once after a stop (TIME_WAIT), yet a listening port stays exclusive
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(False)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="qwen-tray-http", daemon=True)
        self._thread.start()
        log.info("OpenAI-compatible API on %s", self.url)
        return self.url

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException:  # noqa: BLE001 - SystemExit from uvicorn included: the daemon goes on
            log.exception("the HTTP server stopped with an error")

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listening socket and the connections (streams end first: stop the scheduler before)."""
        if self._thread is None:
            return
        self._server.request_exit()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the HTTP server did not stop within %.0f s", timeout)
            self._server.force_exit = True
        else:
            log.info("HTTP server closed")
        if self._sock is not None:
            self._sock.close()
        self._thread = None
