"""The Tk inbox: work posted from other threads runs on the Tk thread, in order, with no timer left behind."""

from __future__ import annotations

import threading
import tkinter as tk

from uitools import pump

from qwen_tray.ui.inbox import TkInbox


def test_posts_from_many_threads_run_on_the_tk_thread_in_order(tk_root: tk.Tk) -> None:
    inbox = TkInbox(tk_root)
    assert inbox.mechanism == "pipe"  # X11: a pipe registered with Tk, no polling
    tk_thread = threading.get_ident()
    ran: list[tuple[int, int, int]] = []

    def work(sender: int, i: int) -> None:
        ran.append((sender, i, threading.get_ident()))

    def sender(n: int) -> None:
        for i in range(50):
            inbox.post(work, n, i)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pump(tk_root, lambda: len(ran) == 8 * 50, 10, "every posted call")
    assert {tid for _, _, tid in ran} == {tk_thread}
    for n in range(8):
        assert [i for s, i, _ in ran if s == n] == list(range(50))  # per sender, in order
    assert tk_root.tk.call("after", "info") == ""  # nothing scheduled while idle
    inbox.close()


def test_a_failing_call_does_not_stop_the_others_and_close_stops_everything(tk_root: tk.Tk) -> None:
    inbox = TkInbox(tk_root)
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    t = threading.Thread(target=lambda: (inbox.post(boom), inbox.post(ran.append, "after")))
    t.start()
    t.join()
    pump(tk_root, lambda: ran == ["after"], 10, "the call after the failing one")
    inbox.close()
    inbox.post(ran.append, "late")  # after close: dropped, no error (shutdown races)
    tk_root.update()
    assert ran == ["after"]


# -- the socket mechanism (Windows' default), run here on Linux --------------------------------------------------
def test_socket_mechanism_runs_posts_from_many_threads_in_order_with_no_timer(tk_root: tk.Tk) -> None:
    inbox = TkInbox(tk_root, mechanism="socket")
    assert inbox.mechanism == "socket"
    ran: list[tuple[int, int, int]] = []
    threads = [threading.Thread(target=lambda n=n: [inbox.post(lambda i=i: ran.append((n, i, threading.get_ident())))
                                                    for i in range(50)]) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pump(tk_root, lambda: len(ran) == 8 * 50, 10, "every posted call")
    assert {tid for _, _, tid in ran} == {threading.get_ident()}
    for n in range(8):
        assert [i for s, i, _ in ran if s == n] == list(range(50))
    assert tk_root.tk.call("after", "info") == ""  # nothing scheduled while idle
    inbox.close()


def test_socket_mechanism_never_blocks_the_poster_and_keeps_wakeups_while_tk_is_out_of_its_loop(
        tk_root: tk.Tk) -> None:
    """The Tk thread is busy (not in its loop, as at start-up and shutdown): a post from another thread returns
    at once (event_generate would wait for the Tk thread, then raise and lose the wake-up), and the work runs
    as soon as the loop runs again, without anyone draining by hand."""
    inbox = TkInbox(tk_root, mechanism="socket")
    ran: list[str] = []
    posted = threading.Event()
    t = threading.Thread(target=lambda: (inbox.post(ran.append, "posted while Tk was busy"), posted.set()))
    t.start()
    assert posted.wait(10)  # this thread (Tk's) processed no event meanwhile
    t.join()
    assert ran == []
    tk_root.after(5000, tk_root.quit)  # a bound, should the wake-up be lost
    t2 = threading.Thread(target=inbox.post, args=(tk_root.quit,))
    t2.start()
    t2.join()
    tk_root.mainloop()  # the loop starts: the pending bytes wake it, the posted work runs, then quit
    assert ran == ["posted while Tk was busy"]
    for timer in str(tk_root.tk.call("after", "info")).split():
        tk_root.after_cancel(timer)
    inbox.close()


def test_socket_mechanism_is_the_signal_wakeup_fd_and_close_releases_it(tk_root: tk.Tk) -> None:
    import os
    import signal

    inbox = TkInbox(tk_root, mechanism="socket")
    fd = inbox.wakeup_fd()
    assert fd is not None
    old = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)  # accepted: a non-blocking socket
    try:
        got: list[int] = []
        previous = signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
        try:
            tk_root.after(5000, tk_root.quit)
            threading.Thread(target=lambda: os.kill(os.getpid(), signal.SIGUSR1)).start()
            inbox.post(lambda: None)
            pump(tk_root, lambda: got == [signal.SIGUSR1], 10, "the signal handler")
        finally:
            signal.signal(signal.SIGUSR1, previous)
    finally:
        signal.set_wakeup_fd(old)
        for timer in str(tk_root.tk.call("after", "info")).split():
            tk_root.after_cancel(timer)
    chan = inbox._chan
    inbox.close()
    assert chan not in str(tk_root.tk.call("file", "channels"))
    inbox.post(lambda: None)  # after close: dropped, no error
