"""The HTTP API as one part of the service: start, stop, and what `status` says about it.

A taken port does not stop the daemon (the popup and the ZeroMQ API still work): the HTTP API
stays off, the log and `qwen-tray status` say why, and the user picks another `[http] port`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..admission import Admission
from ..budget import PromptBudget
from ..config import Config
from ..engine.base import GenerationOptions
from ..jobs import Job
from ..paths import Paths

log = logging.getLogger(__name__)


class HttpApi:
    def __init__(self, paths: Paths, cfg: Config, scheduler: Any, *, model_name: Callable[[], str],
                 budget: PromptBudget | None) -> None:
        self._paths = paths
        self._cfg = cfg
        self._scheduler = scheduler
        self._model_name = model_name
        g = cfg.generation
        self.admission = Admission(max_bytes=cfg.image.max_bytes, max_pixels=cfg.image.max_pixels,
                                   defaults=GenerationOptions(g.max_new_tokens, g.temperature, g.top_p, tuple(g.stop)),
                                   budget=budget)
        self._state: Any = None
        self._server: Any = None
        self.url = ""
        self.problem = "" if cfg.http.enabled else "off in the config ([http] enabled = false)"

    def start(self) -> None:
        if not self._cfg.http.enabled:
            return
        from .app import ApiState, create_app
        from .auth import Gate, ensure_api_key
        from .server import HttpServer

        h = self._cfg.http
        key = ensure_api_key(self._paths.api_key_file)
        self._state = ApiState(self._scheduler, self.admission, Gate(key, h.port, h.allowed_origins),
                               self._model_name, fetch_image_urls=h.fetch_image_urls)
        server = HttpServer(create_app(self._state), h.port)
        try:
            self.url = server.start()
        except OSError as exc:
            self.problem = f"port {h.port} on 127.0.0.1 is taken ({exc.strerror}): set another [http] port"
            log.warning("the OpenAI-compatible API is off: %s", self.problem)
            return
        self._server = server

    def begin_shutdown(self) -> None:
        """New requests get 503 from now on (call before the scheduler stops)."""
        if self._state is not None:
            self._state.closing = True

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.stop(timeout)
            self._server = None

    def status(self) -> dict[str, Any]:
        return {"url": self.url or None, "error": self.problem or None,
                "api_key_file": str(self._paths.api_key_file)}


class WithHttpStatus:
    """The scheduler as the ZeroMQ server sees it, with the HTTP API's address in `status`."""

    def __init__(self, scheduler: Any, http: HttpApi) -> None:
        self._scheduler = scheduler
        self._http = http

    def submit(self, job: Job) -> int:
        return int(self._scheduler.submit(job))

    def cancel(self, job: Job) -> None:
        self._scheduler.cancel(job)

    def status(self) -> dict[str, Any]:
        return {**self._scheduler.status(), "http": self._http.status()}
