"""The one queue in front of the engine: priorities, a bound, cancellation, one worker thread.

Why one worker: a single owner thread means no locks around the model. Everything
else — the IPC server, the popup, the tray — talks to the engine only through `submit`.
With a serial engine (NPU; the optimum backend) the worker runs one job at a time.
With a batching engine (genai on CPU/GPU, `engine.batching`) it runs up to
`max_batch` jobs together, step by step: jobs join and leave at token boundaries,
and an interactive job joins at the next step even when the batch is full, so a
popup question never waits for background answers. With a serial engine that can
continue an answer (`preemptible`: VLMPipeline, i.e. the NPU or batching off), a popup
question preempts a running background job at the next token; that job goes back to
the head of the background line and later continues its answer where it stopped
(its stream goes on; it gets no second start and one terminal event). A batching engine
runs a job "solo" when nothing else waits and the engine can then reuse the conversation's
encoded images (genai's history path); newcomers preempt it the same way and it
continues inside the batch.

Guarantees:
- `interactive` jobs run before `background` ones; first come, first served within a priority.
- At most `queue_size` jobs wait (running ones are not counted); past that `submit` raises `Busy`.
- Every accepted job ends with exactly one terminal call on its sink: `on_done` (stop, length,
  cancelled) or `on_error` (engine_error, timeout, shutting_down).
- An engine exception fails that job only; the worker goes on.
- The worker sleeps on a condition variable; it wakes for a job, a reload, stop, or (when
  `keep_alive_s` >= 0) the idle-unload deadline. No polling.

Sinks are called from the worker thread, except for jobs that end while still
queued (cancel, stop): those end on the thread that called `cancel` or `stop`.
State listeners are called on the thread that changed the state (mostly the worker).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .budget import BudgetSettings, PromptBudget, TooLarge
from .config import ImageConfig
from .engine.base import Engine, Figures, GenerationResult, Message
from .jobs import Busy, Job

log = logging.getLogger(__name__)

STATES = ("loading", "ready", "busy", "error")
PRIORITY_ORDER = ("interactive", "background")
_NO_FIGURES = Figures(0, 0, 0.0, 0.0, 0.0)


class _RunFlag(threading.Event):
    """The `cancel` the engine checks at every token: the job was cancelled, the daemon is
    stopping, or the request's time limit has passed. A real Event, so `set()` works too."""

    def __init__(self, job_cancel: threading.Event, stopping: threading.Event, deadline: float,
                 preempt: threading.Event | None = None) -> None:
        super().__init__()
        self._job_cancel = job_cancel
        self._stopping = stopping
        self._preempt = preempt
        self.deadline = deadline

    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    def preempted(self) -> bool:
        """Stopped only because a popup question wants the engine (not cancelled, stopping or late)."""
        return (self._preempt is not None and self._preempt.is_set() and not self._job_cancel.is_set()
                and not self._stopping.is_set() and not self.timed_out() and not super().is_set())

    def is_set(self) -> bool:
        return (super().is_set() or self._job_cancel.is_set() or self._stopping.is_set() or self.timed_out()
                or (self._preempt is not None and self._preempt.is_set()))

    isSet = is_set  # noqa: N815 - threading.Event's old alias


class _Resume:
    """What a preempted job had delivered, to continue from (serial engines; solo jobs of batching ones)."""

    def __init__(self, chunks: list[str], tokens: int, figures: Figures, deadline: float, started: float) -> None:
        self.chunks = chunks
        self.tokens = tokens
        self.figures = figures  # of the first part: prompt tokens and time to first token
        self.deadline = deadline
        self.started = started


class _Live:
    """A job inside a batching engine: its request, run flag and the text delivered so far."""

    def __init__(self, job: Job, flag: _RunFlag, queue_ms: float, name: str) -> None:
        self.job = job
        self.flag = flag
        self.queue_ms = queue_ms
        self.name = name
        self.partial: list[str] = []
        self.request: Any = None
        self.resume: _Resume | None = None

    def on_chunk(self, text: str) -> None:
        self.partial.append(text)
        _call("on_chunk", self.job, self.job.sink.on_chunk, text)

    def text(self) -> str:
        return "".join(self.partial)


def _joined(resume: _Resume, part: GenerationResult, chunks: list[str]) -> GenerationResult:
    """One result for an answer that ran in parts: all its text, tokens and time, the first part's TTFT."""
    f, g = resume.figures, part.figures
    total_ms = round((time.monotonic() - resume.started) * 1000.0, 2)
    tokens = resume.tokens + g.completion_tokens
    decode_ms = total_ms - f.ttft_ms
    tps = round((tokens - 1) * 1000.0 / decode_ms, 2) if tokens > 1 and decode_ms > 0 else 0.0
    figures = Figures(f.prompt_tokens, tokens, f.ttft_ms, total_ms, tps)
    return GenerationResult("".join(chunks), part.finish_reason, figures)


def _call(what: str, job: Job, fn: Callable[..., Any], *args: Any) -> None:
    """Call a sink method; a broken sink is logged and never kills the worker."""
    if what in ("on_done", "on_error"):
        job.ended = True
    try:
        fn(*args)
    except Exception:  # noqa: BLE001
        log.exception("sink %s failed for %s", what, job.label or job.seq)


class Scheduler:
    """Runs jobs one at a time on the engine that `load_engine` returns (called on the worker)."""

    def __init__(
        self,
        load_engine: Callable[[], Engine],
        *,
        queue_size: int = 32,
        request_timeout_s: float = 300.0,
        keep_alive_s: float = -1.0,
        image_cfg: ImageConfig | None = None,
        npu_max_prompt_len: int = 1024,
        demo: bool = False,
        model_name: str = "",
        model_path: str = "",
        preempt: bool = True,
        budget: PromptBudget | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._load_engine = load_engine
        self._queue_size = queue_size
        self._timeout_s = request_timeout_s
        self._keep_alive_s = keep_alive_s
        image_cfg = image_cfg or ImageConfig()  # `budget` (the service's) wins; these two make one for tests
        self._budget = budget or PromptBudget(BudgetSettings(npu_max_prompt_len, image_cfg.max_tokens,
                                                             image_cfg.default_tokens))
        self.demo = demo
        self.model_name = model_name
        self.model_path = model_path  # shown by `qwen-tray status`: which folder is served

        self._cv = threading.Condition()
        self._queues: dict[str, deque[Job]] = {p: deque() for p in PRIORITY_ORDER}
        self._enqueued_at: dict[int, float] = {}
        self._preempted: deque[Job] = deque()  # background jobs a popup question interrupted; not "waiting"
        self._resume: dict[int, _Resume] = {}
        self._preempt = threading.Event()
        self._solo = False  # a batching engine runs one job through its history path (preemptible)
        self._preempt_serial = preempt  # serial engines: a popup question stops background work ([engine] preempt)
        self._running: Job | None = None
        self._n_running = 0  # jobs in the engine (several when batching)
        self._engine: Engine | None = None
        self._placement: dict[str, Any] | None = None
        self._state = "loading"
        self._error = ""
        self._stopping = threading.Event()
        self._reload_pending = False
        self._last_used = time.monotonic()
        self._started_at = time.monotonic()
        self._listeners: list[Callable[[str], None]] = []
        self._thread: threading.Thread | None = None
        self.loads = 0  # successful engine loads (the first one, reloads, idle reloads)

    # ------------------------------------------------------------ public API

    def start(self) -> None:
        """Start the worker; it loads the engine at once (state loading -> ready | error)."""
        if self._thread is not None:
            raise RuntimeError("the scheduler is already started")
        self._thread = threading.Thread(target=self._work, name="qwen-tray-worker", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> int:
        """Queue `job`; returns its position among the waiting jobs (0 = next to run)."""
        if job.priority not in self._queues:
            raise ValueError(f"priority must be one of {', '.join(PRIORITY_ORDER)}, not {job.priority!r}")
        with self._cv:
            if self._stopping.is_set():
                raise Busy("the daemon is shutting down and takes no new requests")
            waiting = self._waiting()
            if waiting >= self._queue_size:
                raise Busy(f"{waiting} requests are already waiting, the limit is {self._queue_size}: "
                           "try again when one has finished")
            self._queues[job.priority].append(job)
            self._enqueued_at[job.seq] = time.monotonic()
            running = self._running
            if running is not None and not job.cancel.is_set() and self._preempts(job, running):
                self._preempt.set()  # the running job stops at its next token and waits (or joins the batch)
            position = len(self._queues["interactive"]) - 1 if job.priority == "interactive" else waiting
            self._cv.notify_all()
        return position

    def cancel(self, job: Job) -> None:
        """Running: stops at the next token. Queued: removed now. Either way it ends `on_done` "cancelled"."""
        with self._cv:
            job.cancel.set()
            enqueued_at = self._remove_queued(job)
        if enqueued_at is not None:
            self._end_cancelled_unstarted(job, enqueued_at)

    def status(self) -> dict[str, Any]:
        with self._cv:
            return {
                "state": self._state,
                "model": self.model_name,
                "model_path": self.model_path,
                "placement": dict(self._placement) if self._placement else None,
                "queue_depth": self._waiting(),
                "uptime_s": round(time.monotonic() - self._started_at, 1),
                "demo": self.demo,
                "error": self._error or None,
                "loaded": self._engine is not None,
            }

    def reload(self) -> None:
        """Unload and load again on the worker, after the running job (tray "Reload model")."""
        with self._cv:
            self._reload_pending = True
            self._cv.notify_all()

    def add_listener(self, cb: Callable[[str], None]) -> None:
        """`cb(state)` on every state change, on the thread that changed it; it must not block."""
        with self._cv:
            self._listeners.append(cb)

    def stop(self, timeout: float = 10.0) -> None:
        """End queued jobs and the running one with `shutting_down`, then join the worker."""
        with self._cv:
            first = not self._stopping.is_set()
            self._stopping.set()
            queued = [j for p in PRIORITY_ORDER for j in self._queues[p]] + list(self._preempted)
            for q in self._queues.values():
                q.clear()
            self._preempted.clear()
            self._cv.notify_all()
        if first:
            log.info("stopping the scheduler (%d queued, %d running)", len(queued), self._n_running)
        for job in queued:
            self._enqueued_at.pop(job.seq, None)
            partial = self._partial_result(job, "cancelled").text
            _call("on_error", job, job.sink.on_error, "shutting_down", "the daemon is stopping", partial)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the worker did not stop within %.0f s (a model load or a generation is stuck)", timeout)
        elif self._thread is None:
            self._close_engine("shutting down")

    # ------------------------------------------------------------ internals (lock held where noted)

    def _waiting(self) -> int:  # lock held
        return sum(len(q) for q in self._queues.values())

    def _remove_queued(self, job: Job) -> float | None:  # lock held; the enqueue time, None if not queued
        for q in (self._queues.get(job.priority, ()), self._preempted):
            for i, queued in enumerate(q):
                if queued is job:  # identity: Job's dataclass __eq__ would compare images
                    del q[i]
                    return self._enqueued_at.pop(job.seq)
        return None

    def _preemptible(self) -> bool:  # lock held
        """A serial engine that can continue answers, or a batching engine running one job solo."""
        engine = self._engine
        return bool(engine is not None and getattr(engine, "preemptible", False)
                    and (self._solo or (self._preempt_serial and not getattr(engine, "batching", False))))

    def _preempts(self, newcomer: Job, running: Job) -> bool:  # lock held
        """Serial engines: a popup question stops background work. Solo: any job stops background work
        (then both run batched), and a popup question stops a solo popup question."""
        if not self._preemptible():
            return False
        if self._solo:
            return running.priority == "background" or newcomer.priority == "interactive"
        return newcomer.priority == "interactive" and running.priority == "background"

    def _partial_result(self, job: Job, reason: str) -> GenerationResult:
        """A job that ends while waiting: empty, or what it delivered before it was preempted."""
        resume = self._resume.pop(job.seq, None)
        if resume is None:
            return GenerationResult("", reason, _NO_FIGURES)  # type: ignore[arg-type]
        f = resume.figures
        figures = Figures(f.prompt_tokens, resume.tokens, f.ttft_ms,
                          round((time.monotonic() - resume.started) * 1000.0, 2), f.tokens_per_s)
        return GenerationResult("".join(resume.chunks), reason, figures)  # type: ignore[arg-type]

    def _end_cancelled_unstarted(self, job: Job, enqueued_at: float) -> None:
        queue_ms = round((time.monotonic() - enqueued_at) * 1000.0, 2)
        log.info("%s: cancelled while queued", job.label or job.seq)
        _call("on_done", job, job.sink.on_done, self._partial_result(job, "cancelled"), queue_ms, self.demo)

    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._cv:
            if error is not None:
                self._error = error
            if state == self._state:
                return
            self._state = state
            listeners = list(self._listeners)
        for cb in listeners:
            try:
                cb(state)
            except Exception:  # noqa: BLE001
                log.exception("state listener failed")

    def _work(self) -> None:
        self._load()
        while True:
            action, job = self._next()
            if action == "stop":
                break
            if action == "unload":
                self._close_engine(f"idle for {self._keep_alive_s:g} s")
            elif action == "reload":
                self._close_engine("reload requested")
                self._load()
            elif job is not None:
                try:
                    self._run(job)
                except Exception as exc:  # noqa: BLE001 - a bug here must not silence the daemon for good
                    log.exception("worker: request %s failed unexpectedly", job.label or job.seq)
                    if not job.ended:
                        _call("on_error", job, job.sink.on_error, "engine_error",
                              f"internal error: {str(exc).strip() or type(exc).__name__}", "")
        self._close_engine("shutting down")

    def _next(self) -> tuple[str, Job | None]:
        with self._cv:
            while True:
                if self._stopping.is_set():
                    return "stop", None
                if self._reload_pending:
                    self._reload_pending = False
                    return "reload", None
                for q in (self._queues["interactive"], self._preempted, self._queues["background"]):
                    if q:
                        job = q.popleft()
                        self._running = job
                        self._preempt.clear()
                        return "job", job
                timeout = None
                if self._engine is not None and self._keep_alive_s >= 0:
                    timeout = self._last_used + self._keep_alive_s - time.monotonic()
                    if timeout <= 0:
                        return "unload", None
                self._cv.wait(timeout)

    def _load(self) -> bool:
        self._set_state("loading")
        started = time.monotonic()
        try:
            engine = self._load_engine()
        except Exception as exc:  # noqa: BLE001 - any failure: state error, the reason in status
            message = str(exc).strip() or type(exc).__name__
            log.error("the model could not be loaded: %s", message)
            self._set_state("error", message)
            return False
        placement = engine.placement
        with self._cv:
            self._engine = engine
            self._placement = {**placement.as_dict(), "summary": placement.summary()}
            self._last_used = time.monotonic()
            self.loads += 1
        log.info("model %s ready on %s in %.1f s", self.model_name, placement.summary(), time.monotonic() - started)
        self._set_state("ready", "")
        return True

    def _close_engine(self, why: str) -> None:
        with self._cv:
            engine, self._engine = self._engine, None
        if engine is not None:
            log.info("unloading the model (%s)", why)
            try:
                engine.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the engine failed")

    def _finish_running(self) -> None:
        with self._cv:
            self._running = None
            self._last_used = time.monotonic()
            idle = not self._waiting() and not self._preempted and not self._stopping.is_set()
            self._cv.notify_all()
        if idle:
            self._set_state("ready" if self._engine is not None or not self._error else "error")

    def _run(self, job: Job) -> None:
        queue_ms = self._queue_ms(job)
        name = job.label or str(job.seq)
        try:
            if job.cancel.is_set():
                log.info("%s: cancelled before it started", name)
                _call("on_done", job, job.sink.on_done, self._partial_result(job, "cancelled"), queue_ms, self.demo)
                return
            if self._engine is None and not self._load():
                partial = self._partial_result(job, "cancelled").text
                _call("on_error", job, job.sink.on_error, "engine_error",
                      f"the model could not be loaded: {self._error}", partial)
                return
            self._set_state("busy")
            if getattr(self._engine, "batching", False):
                solo = self._solo_messages(job)
                if solo is not None:  # alone: genai's history path, which keeps the images encoded
                    self._n_running = 1
                    self._generate(job, queue_ms, name, solo=solo)
                else:
                    self._run_batch(job, queue_ms)
            else:
                self._n_running = 1
                self._generate(job, queue_ms, name)
        finally:
            self._n_running = 0
            with self._cv:
                self._solo = False
            self._finish_running()

    def _solo_messages(self, job: Job) -> list[Message] | None:
        """The job's fitted messages when it may run solo: nothing else waits and the engine can reuse."""
        engine: Any = self._engine
        if not getattr(engine, "reuses_images", False):
            return None  # [engine] reuse_images off: every job goes into the batch
        with self._cv:
            if self._waiting() or self._preempted or job.seq in self._resume:
                return None
            self._solo = True  # from now on a newcomer preempts it (see _preempts)
        try:
            messages = self._fit_images(engine, job.messages, job)
            if engine.solo_ok(messages):
                return messages
        except TooLarge:  # refused when it runs (not solo)
            pass
        except Exception:  # noqa: BLE001 - the batch path checks it again and reports what is wrong
            log.warning("request %s: not run solo", job.label or job.seq, exc_info=True)
        with self._cv:
            self._solo = False
        return None

    def _queue_ms(self, job: Job) -> float:
        return round((time.monotonic() - self._enqueued_at.pop(job.seq, time.monotonic())) * 1000.0, 2)

    # ------------------------------------------------------------ batching engines

    def _take_for_batch(self, running: int, max_batch: int, hold_background: bool = False) -> list[Job]:
        """Queued jobs that join the batch now: every interactive one, background ones up to `max_batch`.

        `hold_background`: a popup question is still in its prefill; background jobs (whose images
        would be encoded on this thread between its prefill chunks) join after its first token.
        """
        with self._cv:
            if self._stopping.is_set() or self._reload_pending:
                return []
            taken = list(self._queues["interactive"])
            self._queues["interactive"].clear()
            if hold_background:
                return taken
            taken += self._preempted
            self._preempted.clear()
            background = self._queues["background"]
            while background and running + len(taken) < max_batch:
                taken.append(background.popleft())
            return taken

    def _run_batch(self, first: Job, first_queue_ms: float) -> None:
        """Run `first` and every job that joins while it runs, one engine step at a time, until none is left."""
        engine: Any = self._engine
        live: list[_Live] = []
        self._admit(engine, first, first_queue_ms, live)
        try:
            while live:
                try:
                    engine.step()
                except Exception as exc:  # noqa: BLE001 - a failed step fails the jobs in it; the worker lives on
                    message = str(exc).strip() or type(exc).__name__
                    log.error("engine step failed with %d requests running: %s", len(live), message)
                    for item in live:
                        with contextlib.suppress(Exception):  # the engine is already failing
                            item.request.cancel()
                        _call("on_error", item.job, item.job.sink.on_error, "engine_error", message, item.text())
                    live.clear()
                    break
                for item in list(live):
                    if self._poll(item):
                        live.remove(item)
                prefilling = any(i.job.priority == "interactive" and not i.partial for i in live)
                for job in self._take_for_batch(len(live), engine.max_batch, prefilling):
                    self._admit(engine, job, self._queue_ms(job), live)
                self._n_running = len(live)
        finally:
            try:
                while engine.busy():  # cancelled requests leave genai at the next step
                    engine.step()
            except Exception:  # noqa: BLE001
                log.exception("freeing cancelled requests failed")

    def _admit(self, engine: Any, job: Job, queue_ms: float, live: list[_Live]) -> None:
        name = job.label or str(job.seq)
        if job.cancel.is_set():
            log.info("%s: cancelled before it started", name)
            _call("on_done", job, job.sink.on_done, self._partial_result(job, "cancelled"), queue_ms, self.demo)
            return
        resume = self._resume.pop(job.seq, None)
        deadline = resume.deadline if resume else time.monotonic() + self._timeout_s
        item = _Live(job, _RunFlag(job.cancel, self._stopping, deadline), queue_ms, name)
        messages, options = job.messages, job.options
        if resume:  # preempted while solo: continue its answer inside the batch
            item.resume, item.partial = resume, list(resume.chunks)
            messages = [*messages, Message("assistant", "".join(resume.chunks))]
            options = dataclasses.replace(options, max_new_tokens=max(1, options.max_new_tokens - resume.tokens),
                                          min_new_tokens=max(0, options.min_new_tokens - resume.tokens))
        else:
            _call("on_start", job, job.sink.on_start)
        if self._stopping.is_set() or (resume and resume.tokens >= job.options.max_new_tokens):
            reason = "cancelled" if self._stopping.is_set() else "length"
            result = GenerationResult("", reason, _NO_FIGURES)  # type: ignore[arg-type]
            self._conclude(job, item.flag, _joined(resume, result, item.partial) if resume else result, queue_ms,
                           name)
            return
        try:
            item.request = engine.start(self._fit_images(engine, messages, job), options, item.on_chunk, item.flag)
        except Exception as exc:  # noqa: BLE001 - this request failed (a bad image, a full cache); the rest go on
            message = str(exc).strip() or type(exc).__name__
            log.error("%s: engine error at start: %s", name, message)
            _call("on_error", job, job.sink.on_error, "engine_error", message, item.text())
            return
        live.append(item)
        self._n_running = len(live)

    def _poll(self, item: _Live) -> bool:
        """Deliver what the last step produced for one job; True (and its terminal event) once it ended."""
        try:
            if not item.request.poll():
                return False
            result = item.request.result()
            if item.resume is not None:
                result = _joined(item.resume, result, item.partial)
        except Exception as exc:  # noqa: BLE001
            message = str(exc).strip() or type(exc).__name__
            log.error("%s: engine error after %d chunks: %s", item.name, len(item.partial), message)
            with contextlib.suppress(Exception):  # the engine is already failing
                item.request.cancel()
            _call("on_error", item.job, item.job.sink.on_error, "engine_error", message, item.text())
            return True
        self._conclude(item.job, item.flag, result, item.queue_ms, item.name)
        return True

    def _generate(self, job: Job, queue_ms: float, name: str, solo: list[Message] | None = None) -> None:
        engine: Any = self._engine
        assert engine is not None
        resume = self._resume.pop(job.seq, None)
        with self._cv:
            preempt = self._preempt if self._preemptible() and (solo is not None or job.priority == "background") \
                else None
        deadline = resume.deadline if resume else time.monotonic() + self._timeout_s
        flag = _RunFlag(job.cancel, self._stopping, deadline, preempt)
        partial: list[str] = list(resume.chunks) if resume else []
        messages, options = job.messages, job.options
        if resume:  # continue the answer it had begun: the partial answer closes the conversation
            messages = [*messages, Message("assistant", "".join(resume.chunks))]
            options = dataclasses.replace(options, max_new_tokens=max(1, options.max_new_tokens - resume.tokens),
                                          min_new_tokens=max(0, options.min_new_tokens - resume.tokens))

        def on_chunk(text: str) -> None:
            partial.append(text)
            _call("on_chunk", job, job.sink.on_chunk, text)

        if not resume:
            _call("on_start", job, job.sink.on_start)
        try:
            if self._stopping.is_set():
                result = GenerationResult("", "cancelled", _NO_FIGURES)
            elif resume and resume.tokens >= job.options.max_new_tokens:
                result = GenerationResult("", "length", _NO_FIGURES)
            elif solo is not None:
                result = engine.generate_solo(solo, options, on_chunk, flag)
            else:
                result = engine.generate(self._fit_images(engine, messages, job), options, on_chunk, flag)
        except Exception as exc:  # noqa: BLE001 - the engine failed this request; the worker lives on
            message = str(exc).strip() or type(exc).__name__
            log.error("%s: engine error after %d chunks: %s", name, len(partial), message)
            _call("on_error", job, job.sink.on_error, "engine_error", message, "".join(partial))
            return
        if resume:
            result = _joined(resume, result, partial)
        if result.finish_reason == "cancelled" and flag.preempted():
            with self._cv:
                requeued = not self._stopping.is_set()  # stop() has already ended what was queued
                if requeued:
                    first = resume.figures if resume else result.figures
                    started = resume.started if resume else time.monotonic() - result.figures.total_ms / 1000.0
                    self._resume[job.seq] = _Resume(partial, result.figures.completion_tokens, first, deadline,
                                                    started)
                    self._enqueued_at[job.seq] = time.monotonic()
                    self._preempted.appendleft(job)
            if requeued:
                log.info("%s: preempted by an interactive request after %d tokens", name,
                         result.figures.completion_tokens)
                return
        self._conclude(job, flag, result, queue_ms, name)

    def _conclude(self, job: Job, flag: _RunFlag, result: GenerationResult, queue_ms: float, name: str) -> None:
        """The one terminal event of a job the engine ran: why it ended decides done or error."""
        if result.finish_reason == "cancelled" and not job.cancel.is_set():
            if self._stopping.is_set():
                log.info("%s: ended by shutdown after %d tokens", name, result.figures.completion_tokens)
                _call("on_error", job, job.sink.on_error, "shutting_down", "the daemon is stopping", result.text)
                return
            if flag.timed_out():
                log.warning("%s: timed out after %.0f s", name, self._timeout_s)
                _call("on_error", job, job.sink.on_error, "timeout",
                      f"the request ran longer than the limit of {self._timeout_s:g} s", result.text)
                return
        if job.trimmed is not None:  # the prompt budget left part of the conversation out: say so
            result = dataclasses.replace(result, trimmed=job.trimmed)
        f = result.figures
        log.info("%s: %s, %d+%d tokens, queue %.0f ms, ttft %.0f ms, total %.0f ms", name, result.finish_reason,
                 f.prompt_tokens, f.completion_tokens, queue_ms, f.ttft_ms, f.total_ms)
        _call("on_done", job, job.sink.on_done, result, queue_ms, self.demo)

    def _fit_images(self, engine: Engine, messages: list[Message], job: Job) -> list[Message]:
        """The conversation within the prompt budget (qwen_tray.budget): images scaled, older turns trimmed;
        what was trimmed is kept on the job for its terminal event. Raises TooLarge."""
        fitted = self._budget.fit(messages, engine, job.options.max_new_tokens)
        job.trimmed = fitted.trimmed
        return fitted.messages
