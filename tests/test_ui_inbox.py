"""The Tk inbox: work posted from other threads runs on the Tk thread, in order, with no timer left behind."""

from __future__ import annotations

import threading
import tkinter as tk

from uitools import pump

from daemon.ui.inbox import TkInbox


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
