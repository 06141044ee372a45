"""The resident service: one model, one scheduler, the ZeroMQ API; started and stopped as a unit.

`qwen-tray run --headless` is this and a signal handler. The desktop app runs
the same `Service` and submits its popup jobs to `service.scheduler` at
priority "interactive", so the popup and the IPC clients share the one model.

Start: single-instance lock -> resolve the model (the bundled tiny model is the
demo model when none is configured or stored) -> scheduler (loads on its worker)
-> ZeroMQ server -> connection file. Stop, in reverse: queued and running jobs
end with `shutting_down`, their last events reach the clients, the sockets
close, the connection file goes, the lock is released.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config
from .engine.base import Engine, GenerationOptions
from .engine.placement import PlacementSettings
from .engine.store import resolve_model
from .instance import InstanceLock
from .paths import Paths
from .scheduler import Scheduler

log = logging.getLogger(__name__)

DEMO_NOTE = ("no model is configured or in the store: serving the bundled tiny demo model, which only names an "
             "image's main colour (run `qwen-tray model pull` to get Qwen3-VL)")
DEFAULT_CONTEXT_TOKENS = 32768


def placement_settings(paths: Paths, cfg: Config) -> PlacementSettings:
    return PlacementSettings(
        cache_dir=str(paths.cache_dir),
        npu_max_prompt_len=cfg.npu.max_prompt_len,
        npu_min_response_len=cfg.npu.min_response_len,
        npu_generate_hint=cfg.npu.generate_hint,
        npu_prefill_hint=cfg.npu.prefill_hint,
        gpu_queue_throttle=cfg.gpu.queue_throttle,
        cpu_inference_precision=cfg.cpu.inference_precision,
        cpu_kv_cache_precision=cfg.cpu.kv_cache_precision,
        cpu_dynamic_quantization_group_size=cfg.cpu.dynamic_quantization_group_size,
        batching=cfg.engine.batching,
        max_batch=cfg.engine.max_batch,
        kv_cache_gb=cfg.engine.kv_cache_gb,
        reuse_images=cfg.engine.reuse_images,
    )


def model_context_tokens(model_dir: Path) -> int:
    """The language model's context length from its config.json (Qwen3-VL: text_config.max_position_embeddings)."""
    try:
        data = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_CONTEXT_TOKENS
    value = (data.get("text_config") or {}).get("max_position_embeddings") or data.get("max_position_embeddings")
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_CONTEXT_TOKENS


class Service:
    """`start()`, then `wait()` until a stop is requested (signal, `qwen-tray stop`, tray), then `stop()`.

    `engine_factory(model_dir)` replaces the default loader (tests wrap the real engine with it).
    """

    def __init__(self, paths: Paths, cfg: Config, *,
                 engine_factory: Callable[[Path], Engine] | None = None) -> None:
        self.paths = paths
        self.cfg = cfg
        self.scheduler: Scheduler | None = None
        self.server: Any = None  # qwen_tray.ipc_server.Server once started
        self.http: Any = None  # qwen_tray.openai_api.runner.HttpApi once started
        self.demo = False
        self.model_dir: Path | None = None
        self.connection_file: Path | None = None
        self._engine_factory = engine_factory
        self._lock = InstanceLock(paths.lock_file)
        self._stop_requested = threading.Event()
        self._stop_listeners: list[Callable[[], None]] = []
        self._stopped = False
        self._started = False
        self._state_lock = threading.Lock()
        self.failure = ""  # why the service stopped on its own (its IPC server thread died); "" otherwise
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()
        self._context_tokens = DEFAULT_CONTEXT_TOKENS

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Raises AlreadyRunning (another daemon of this user), ModelNotFound (a configured model is missing)."""
        from qwen_tray.connection_file import write_connection_file
        from qwen_tray.ipc_server import Server

        self._lock.acquire()
        try:
            cfg = self.cfg
            if cfg.model.backend == "openai":  # a remote server answers; it measures its own context
                self.model_dir, self.demo, model_name = None, False, cfg.remote.model
                self._context_tokens = 1 << 62
            else:
                self.model_dir, self.demo = resolve_model(cfg.model.path, self.paths)
                model_name = self.model_dir.name
                self._context_tokens = model_context_tokens(self.model_dir)
            if self.demo:
                log.warning(DEMO_NOTE)
            self.scheduler = Scheduler(
                self._make_loader(self.model_dir),
                queue_size=cfg.server.queue_size,
                request_timeout_s=cfg.server.request_timeout_s,
                keep_alive_s=cfg.server.keep_alive_s,
                image_cfg=cfg.image,
                npu_max_prompt_len=cfg.npu.max_prompt_len,
                demo=self.demo,
                model_name=model_name,
                model_path=str(self.model_dir) if self.model_dir is not None else "",
                preempt=cfg.engine.preempt,
            )
            self.scheduler.start()
            from .openai_api.runner import HttpApi, WithHttpStatus

            self.http = HttpApi(self.paths, cfg, self.scheduler, model_name=lambda: model_name,
                                context_tokens=self._prompt_limit, count_tokens=self._count_tokens)
            self.http.start()
            g = cfg.generation
            self.server = Server(
                WithHttpStatus(self.scheduler, self.http),  # status also tells the HTTP API's URL
                port=cfg.server.port,
                max_bytes=cfg.image.max_bytes,
                max_pixels=cfg.image.max_pixels,
                defaults=GenerationOptions(g.max_new_tokens, g.temperature, g.top_p, tuple(g.stop)),
                version=__version__,
                context_tokens=self._prompt_limit,
                count_tokens=self._count_tokens,
                on_shutdown=self.request_stop,
                on_failure=self._api_failed,
            )
            endpoint = self.server.start()
            self.connection_file = self.paths.connection_file
            write_connection_file(self.connection_file, self.server.connection_info())
        except BaseException:
            self._teardown()
            raise
        self._started = True
        log.info("qwen-tray %s serving %s%s on %s (pid %d); connection file %s", __version__, model_name,
                 " (demo model)" if self.demo else "", endpoint, os.getpid(), self.connection_file)

    def stop(self, timeout: float = 10.0) -> None:
        """Clean shutdown; safe to call more than once and from any thread but the IPC server's.

        A service that never started (a second `run` refused, say) has nothing to stop and logs nothing, so the
        shared log never reads as if the running daemon had stopped.
        """
        with self._state_lock:
            if self._stopped or not self._started:
                self._stopped = True
                return
            self._stopped = True
        self._stop_requested.set()
        log.info("shutting down")
        self._teardown(timeout)
        log.info("stopped")

    @property
    def exit_code(self) -> int:
        """What `qwen-tray run` exits with: 1 when the service failed (see `failure`), else 0."""
        return 1 if self.failure else 0

    def _api_failed(self, reason: str) -> None:
        """The IPC server thread died (a bug). Called on that thread: nobody can reach the daemon any more, so
        it must not look alive: the connection file goes now (clients say "not running" instead of timing out),
        and the owner stops the service and exits with status 1 (see docs/decisions.md)."""
        from qwen_tray.connection_file import remove_connection_file

        self.failure = f"the local API failed ({reason})"
        log.error("%s: qwen-tray stops (exit status 1); `qwen-tray run` starts it again", self.failure)
        if self.connection_file is not None:
            remove_connection_file(self.connection_file, os.getpid())
        self.request_stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested; True if it was (False: the timeout passed)."""
        return self._stop_requested.wait(timeout)

    def request_stop(self) -> None:
        """Ask the owner of the main thread to stop the service (a signal, `qwen-tray stop`, the tray's Quit)."""
        with self._state_lock:
            self._stop_requested.set()
            listeners = list(self._stop_listeners)
        for cb in listeners:
            self._call_stop_listener(cb)

    def on_stop_request(self, cb: Callable[[], None]) -> None:
        """`cb()` when a stop is requested (called on the requesting thread; e.g. to quit a Tk main loop).

        A stop requested before `cb` was registered (a `shutdown` that came as soon as the connection file was
        published) calls it at once, here: registering and checking happen under one lock, so `cb` runs
        exactly once whichever comes first.
        """
        with self._state_lock:
            self._stop_listeners.append(cb)
            already = self._stop_requested.is_set()
        if already:
            self._call_stop_listener(cb)

    @staticmethod
    def _call_stop_listener(cb: Callable[[], None]) -> None:
        try:
            cb()
        except Exception:  # noqa: BLE001
            log.exception("stop listener failed")

    # ------------------------------------------------------------ internals

    def _teardown(self, timeout: float = 10.0) -> None:
        from qwen_tray.connection_file import remove_connection_file

        if self.http is not None:
            self.http.begin_shutdown()  # new HTTP requests: 503
        if self.scheduler is not None:
            self.scheduler.stop(timeout)  # every job's terminal event is handed to the server
        if self.http is not None:
            self.http.stop(timeout)
        if self.server is not None:
            self.server.stop(timeout)  # ... and delivered; then the sockets close
        if self.connection_file is not None:
            remove_connection_file(self.connection_file, os.getpid())
        self._lock.release()

    def _make_loader(self, model_dir: Path | None) -> Callable[[], Engine]:
        """The scheduler's loader: the engine, then (once) the tokenizer the request checks use."""
        if self._engine_factory is not None:
            factory = self._engine_factory

            def load() -> Engine:
                return factory(model_dir)
        else:
            from .engine.loader import load_engine

            cfg, settings = self.cfg, placement_settings(self.paths, self.cfg)

            def load() -> Engine:
                return load_engine(model_dir, cfg.model.backend, cfg.model.device, settings,  # type: ignore[arg-type]
                                   remote=cfg.remote)

        def load_with_tokenizer() -> Engine:
            engine = load()
            if model_dir is None:  # a remote server measures its own context: no tokenizer here
                return engine
            try:
                self._load_tokenizer()
            except Exception as exc:  # noqa: BLE001 - the checks load it on demand (and report) instead
                log.warning("the tokenizer for request checks could not be loaded: %s", exc)
            return engine

        return load_with_tokenizer

    def _prompt_limit(self) -> int:
        """Tokens a request's text may use: the NPU's static prompt when the language model is there."""
        placement = self.scheduler.status()["placement"] if self.scheduler is not None else None
        if placement and placement.get("language_device") == "NPU":
            return self.cfg.npu.max_prompt_len
        return self._context_tokens

    def _load_tokenizer(self) -> Any:
        """A tokenizer of our own for the request checks, loaded with the model (on the scheduler's worker)."""
        with self._tokenizer_lock:
            if self._tokenizer is None:
                import openvino_genai as ov_genai

                self._tokenizer = ov_genai.Tokenizer(str(self.model_dir))
            return self._tokenizer

    def _count_tokens(self, text: str) -> int:
        """Tokens of `text`, with a tokenizer of our own (the engine may be busy, unloaded or loading).

        Called on the IPC server's check executor (never its socket thread), only for text that might not fit.
        """
        tokenizer = self._load_tokenizer()
        with self._tokenizer_lock:  # one encode at a time: the executor has more than one thread
            return int(tokenizer.encode(text).input_ids.get_shape()[1])
