"""A thread-safe way to hand work to the Tk thread that costs nothing while idle.

Tk calls from other threads are not safe in every build, and a periodic `after()`
poll would wake the process forever. So other threads put callables on a queue
and wake the Tk thread once:

- POSIX (X11): one byte on a pipe whose read end is registered with Tk's
  `createfilehandler`; Tk's event loop wakes on it like on any X event.
- Windows (no `createfilehandler`): one byte on a loopback TCP connection whose
  other end is a Tcl socket channel with a `fileevent readable` handler; Tcl's
  own notifier watches it, so Tk wakes as for any event. Not `event_generate`
  from another thread: _tkinter marshals that call and makes the caller wait for
  the Tk thread (the hotkey, tray and IPC threads would wait on Tk), and raises
  when Tk is outside its loop (the wake-up is lost at start and shutdown). A byte
  on a socket never blocks the poster (non-blocking send; a full buffer means a
  wake-up is pending anyway) and waits in the socket until the loop runs again.
  The same path runs on Linux when asked for (`mechanism="socket"`), which is how
  it is tested.

Either way the Tk thread runs, on each wake-up, what was queued by then.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import tkinter as tk
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class TkInbox:
    """`post(fn, *args)` from any thread runs `fn(*args)` on the Tk thread, soon and in order."""

    def __init__(self, root: tk.Tk, mechanism: str | None = None) -> None:
        """`mechanism`: "pipe" (POSIX default) or "socket" (Windows default; works everywhere)."""
        self.root = root
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._closed = False
        self._tk_thread = threading.get_ident()
        self._pipe: tuple[int, int] | None = None
        self._pipe_lock = threading.Lock()  # a write never races the close (a reused fd number)
        self._sock: socket.socket | None = None
        self._chan = ""
        self._tcl_command = ""
        if mechanism is None:
            mechanism = "pipe" if hasattr(root.tk, "createfilehandler") and os.name == "posix" else "socket"
        if mechanism == "pipe":
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._pipe = (r, w)
            root.tk.createfilehandler(r, tk.READABLE, self._on_pipe)
            self.mechanism = "pipe"
        elif mechanism == "socket":
            self._open_socket()
            self.mechanism = "socket"
        else:
            raise ValueError(f"unknown inbox mechanism {mechanism!r}")

    def _open_socket(self) -> None:
        """A loopback TCP pair: Python's end for writing, Tcl's end (a channel) watched by Tk's notifier."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            listener.settimeout(10)
            port = listener.getsockname()[1]
            chan = str(self.root.tk.call("socket", "127.0.0.1", port))  # connects at once (the backlog accepts)
            tcl_port = int(str(self.root.tk.call("fconfigure", chan, "-sockname")).split()[-1])
            for _ in range(8):  # only Tcl's own connection is ours; anything else that raced in is closed
                conn, peer = listener.accept()
                if peer[0] == "127.0.0.1" and peer[1] == tcl_port:
                    break
                conn.close()
            else:
                raise OSError("the Tk wake-up socket could not be connected")
        finally:
            listener.close()
        conn.setblocking(False)
        self.root.tk.call("fconfigure", chan, "-blocking", 0, "-translation", "binary")
        self._tcl_command = self.root.register(self._on_socket)
        self.root.tk.call("fileevent", chan, "readable", self._tcl_command)
        self._sock, self._chan = conn, chan

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
            with self._pipe_lock:
                if self._sock is not None:
                    with contextlib.suppress(OSError):  # BlockingIOError: full of wake-ups already
                        self._sock.send(b"!")

    def wakeup_fd(self) -> int | None:
        """A file descriptor for `signal.set_wakeup_fd`: a signal then wakes Tk, so Python runs its handler
        at once instead of after the next X event.

        POSIX: the inbox pipe itself. The socket mechanism: its non-blocking socket (set_wakeup_fd wants a
        socket on Windows), whose other end Tk watches.
        """
        if self._pipe is not None:
            return self._pipe[1]
        if self._sock is not None:
            return self._sock.fileno()
        return None

    def _on_socket(self) -> None:
        chan = self._chan
        if not chan:
            return
        try:
            self.root.tk.call("read", chan)  # whatever is there (non-blocking)
            if self.root.tk.call("eof", chan):
                self.root.tk.call("fileevent", chan, "readable", "")  # the writer is gone: stop watching
        except tk.TclError:
            log.debug("inbox socket read failed", exc_info=True)
        self.drain()

    def _on_pipe(self, fd: int, mask: int) -> None:
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass
        self.drain()

    def drain(self) -> None:
        """Run what was queued when this wake-up came (Tk thread). One failing callable is logged; the rest
        still run. Not until the queue is empty: a fast stream refills it as fast as it is drained, and the
        user's clicks and keys (Stop, Esc) would wait behind it. Whatever is posted meanwhile has woken Tk
        again (its own byte, or `after_idle` from the Tk thread), so it runs after the pending X events."""
        for _ in range(self._queue.qsize()):
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
            if self._sock is not None:
                self._sock.close()
                self._sock = None
        if self._chan:
            with contextlib.suppress(tk.TclError):
                self.root.tk.call("fileevent", self._chan, "readable", "")
                self.root.tk.call("close", self._chan)
            self._chan = ""
        if self._tcl_command:
            with contextlib.suppress(tk.TclError):
                self.root.deletecommand(self._tcl_command)
            self._tcl_command = ""
