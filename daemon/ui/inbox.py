"""A thread-safe way to hand work to the Tk thread that costs nothing while idle.

Tk calls from other threads are not safe in every build, and a periodic `after()`
poll would wake the process forever. So other threads put callables on a queue
and wake the Tk thread once:

- POSIX (X11): one byte on a pipe whose read end is registered with Tk's
  `createfilehandler`; Tk's event loop wakes on it like on any X event.
- Windows (no `createfilehandler`; python.org's Tcl is always built threaded):
  `event_generate('<<qwen-wake>>', when='tail')`, which _tkinter marshals to the
  Tk thread when Tcl is threaded.

Either way the Tk thread drains the whole queue on each wake-up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import tkinter as tk
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

WAKE_EVENT = "<<qwen-wake>>"


class TkInbox:
    """`post(fn, *args)` from any thread runs `fn(*args)` on the Tk thread, soon and in order."""

    def __init__(self, root: tk.Tk) -> None:
        self.root = root
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._closed = False
        self._tk_thread = threading.get_ident()
        self._pipe: tuple[int, int] | None = None
        self._signal_sockets: tuple[Any, Any] | None = None
        self._pipe_lock = threading.Lock()  # a write never races the close (a reused fd number)
        if hasattr(root.tk, "createfilehandler") and os.name == "posix":
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._pipe = (r, w)
            root.tk.createfilehandler(r, tk.READABLE, self._on_pipe)
            self.mechanism = "pipe"
        else:
            if not root.tk.call("info", "exists", "tcl_platform(threaded)"):
                raise RuntimeError("this Tcl/Tk is built without threads and has no file handlers")
            root.bind(WAKE_EVENT, lambda e: self.drain())
            self.mechanism = "event"

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(*args)` for the Tk thread (any thread; a no-op after close)."""
        if self._closed:
            return
        self._queue.put((fn, args))
        if threading.get_ident() == self._tk_thread:
            self.root.after_idle(self.drain)
        elif self.mechanism == "pipe":
            with self._pipe_lock:
                # BlockingIOError: the pipe is full of wake-ups already; the Tk thread drains everything
                if self._pipe is not None:
                    with contextlib.suppress(BlockingIOError):
                        os.write(self._pipe[1], b"!")
        else:
            # RuntimeError: Tk is not in its main loop (starting or stopping): drained at start, dropped at stop
            with contextlib.suppress(RuntimeError, tk.TclError):
                self.root.event_generate(WAKE_EVENT, when="tail")

    def wakeup_fd(self) -> int | None:
        """A file descriptor for `signal.set_wakeup_fd`: a signal then wakes Tk, so Python runs its handler
        at once instead of after the next X event.

        POSIX: the inbox pipe itself. Windows: a socket pair (set_wakeup_fd wants a socket there) watched by a
        small thread that wakes Tk through the inbox. None if neither works.
        """
        if self._pipe is not None:
            return self._pipe[1]
        try:
            import socket

            reader, writer = socket.socketpair()
            writer.setblocking(False)
        except OSError:
            return None
        self._signal_sockets = (reader, writer)

        def watch() -> None:
            while not self._closed:
                try:
                    if not reader.recv(64):
                        return
                except OSError:
                    return
                self.post(lambda: None)  # the wake-up alone lets Python run the signal handler

        threading.Thread(target=watch, name="signal-wake", daemon=True).start()
        return writer.fileno()

    def _on_pipe(self, fd: int, mask: int) -> None:
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass
        self.drain()

    def drain(self) -> None:
        """Run everything queued (Tk thread). One failing callable is logged; the rest still run."""
        while True:
            try:
                fn, args = self._queue.get_nowait()
            except queue.Empty:
                return
            if self._closed:
                continue
            try:
                fn(*args)
            except Exception:
                log.exception("desktop action %s failed", getattr(fn, "__qualname__", fn))

    def close(self) -> None:
        """Stop accepting work and release the pipe (Tk thread)."""
        self._closed = True
        with self._pipe_lock:
            if self._pipe is not None:
                r, w = self._pipe
                with contextlib.suppress(tk.TclError):
                    self.root.tk.deletefilehandler(r)
                os.close(r)
                os.close(w)
                self._pipe = None
        if self._signal_sockets is not None:
            for sock in self._signal_sockets:
                sock.close()
            self._signal_sockets = None
