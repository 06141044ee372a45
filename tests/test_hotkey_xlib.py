"""X11 hotkeys for real: XGrabKey on an Xvfb root window, key presses sent by xdotool (XTEST)."""

from __future__ import annotations

import queue
import time

import pytest
from Xlib import XK, X, error
from Xlib import display as xdisplay
from xvfb import XvfbDisplay

from qwen_tray.hotkey import create_listener
from qwen_tray.hotkey.base import HotkeyTaken, HotkeyUnavailable
from qwen_tray.hotkey.xlib_backend import XlibHotkeyListener

WAIT = 15.0


@pytest.fixture
def listener(xvfb_display: XvfbDisplay):
    lst = XlibHotkeyListener()
    lst.start()
    yield lst
    lst.stop()


def _recorder(fired: queue.Queue[str], name: str):
    return lambda: fired.put(name)


def test_grab_fires_callback_on_its_thread(xvfb_display: XvfbDisplay, listener: XlibHotkeyListener) -> None:
    import threading

    fired: queue.Queue[tuple[str, str]] = queue.Queue()
    listener.register("ask_screen", "ctrl+alt+q", lambda: fired.put(("ask_screen", threading.current_thread().name)))
    listener.register("ask_region", "ctrl+alt+r", lambda: fired.put(("ask_region", threading.current_thread().name)))
    xvfb_display.xdotool("key", "ctrl+alt+r")
    xvfb_display.xdotool("key", "ctrl+alt+q")
    assert fired.get(timeout=WAIT) == ("ask_region", "hotkeys-x11")
    assert fired.get(timeout=WAIT) == ("ask_screen", "hotkeys-x11")
    # A plain "q", or a different modifier set, is not the hotkey: the next thing seen is the real one again.
    xvfb_display.xdotool("key", "q", "ctrl+q", "ctrl+shift+alt+q", "ctrl+alt+q")
    assert fired.get(timeout=WAIT)[0] == "ask_screen"
    assert fired.empty()


def test_fires_with_numlock_and_capslock_on(xvfb_display: XvfbDisplay, listener: XlibHotkeyListener) -> None:
    fired: queue.Queue[str] = queue.Queue()
    listener.register("ask_screen", "ctrl+alt+q", _recorder(fired, "ask_screen"))
    xvfb_display.xdotool("key", "Num_Lock")
    probe = xdisplay.Display(xvfb_display.display)
    try:
        numlock_bit = listener.ignored_mask & ~X.LockMask & 0xF8
        assert numlock_bit, "NumLock is mapped to a modifier on Xvfb"
        assert probe.screen().root.query_pointer().mask & numlock_bit, "NumLock is really on"
        xvfb_display.xdotool("key", "ctrl+alt+q")
        assert fired.get(timeout=WAIT) == "ask_screen"
        xvfb_display.xdotool("key", "Caps_Lock")
        assert probe.screen().root.query_pointer().mask & X.LockMask, "CapsLock is really on"
        xvfb_display.xdotool("key", "ctrl+alt+q")
        assert fired.get(timeout=WAIT) == "ask_screen"
    finally:
        probe.close()


def _grab_elsewhere(display_name: str, key: str, mask: int) -> xdisplay.Display:
    """Another X client holding ctrl+alt+KEY (exact mask, no lock variants), as a rival program would."""
    other = xdisplay.Display(display_name)
    keycode = other.keysym_to_keycode(XK.string_to_keysym(key))
    catcher = error.CatchError()
    other.screen().root.grab_key(keycode, mask, True, X.GrabModeAsync, X.GrabModeAsync, onerror=catcher)
    other.sync()
    assert catcher.get_error() is None
    return other


def test_taken_combination_fails_alone(xvfb_display: XvfbDisplay, listener: XlibHotkeyListener) -> None:
    rival = _grab_elsewhere(xvfb_display.display, "t", X.ControlMask | X.Mod1Mask)
    try:
        fired: queue.Queue[str] = queue.Queue()
        with pytest.raises(HotkeyTaken) as info:
            listener.register("ask_region", "ctrl+alt+t", _recorder(fired, "ask_region"))
        assert info.value.name == "ask_region" and "ctrl+alt+t" in str(info.value)
        listener.register("ask_screen", "ctrl+alt+q", _recorder(fired, "ask_screen"))
        xvfb_display.xdotool("key", "ctrl+alt+q")
        assert fired.get(timeout=WAIT) == "ask_screen"
        # The failed registration left none of its lock variants grabbed: the rival can grab them all.
        keycode = rival.keysym_to_keycode(XK.string_to_keysym("t"))
        catcher = error.CatchError()
        for variant in listener._lock_variants:
            if variant:
                rival.screen().root.grab_key(
                    keycode, X.ControlMask | X.Mod1Mask | variant, True, X.GrabModeAsync, X.GrabModeAsync,
                    onerror=catcher,
                )  # fmt: skip
        rival.sync()
        assert catcher.get_error() is None
    finally:
        rival.close()


def test_same_combination_twice_in_one_listener_is_taken(listener: XlibHotkeyListener) -> None:
    listener.register("a", "ctrl+alt+q", lambda: None)
    with pytest.raises(HotkeyTaken, match="already bound here"):
        listener.register("b", "ctrl+alt+q", lambda: None)
    listener.register("a", "ctrl+alt+w", lambda: None)  # re-registering a name moves it and frees the old combo
    listener.register("b", "ctrl+alt+q", lambda: None)


def test_pause_swallows_presses(xvfb_display: XvfbDisplay, listener: XlibHotkeyListener) -> None:
    fired: queue.Queue[str] = queue.Queue()
    listener.register("ask_screen", "ctrl+alt+q", _recorder(fired, "ask_screen"))
    listener.register("ask_region", "ctrl+alt+r", _recorder(fired, "ask_region"))
    listener.pause(True)
    assert listener.paused
    xvfb_display.xdotool("key", "ctrl+alt+q")
    xvfb_display.xdotool("key", "ctrl+alt+r")
    deadline = time.monotonic() + WAIT
    while listener._dispatch.swallowed < 2:  # the listener thread reads the events asynchronously
        assert time.monotonic() < deadline, "the paused presses never reached the listener"
        time.sleep(0.01)
    assert fired.empty()
    listener.pause(False)
    # Events are handled in order: had the paused presses fired, they would come out of the queue first.
    xvfb_display.xdotool("key", "ctrl+alt+r")
    assert fired.get(timeout=WAIT) == "ask_region"
    assert fired.empty()


def test_unregister_and_stop_release_grabs(xvfb_display: XvfbDisplay) -> None:
    lst = XlibHotkeyListener()
    lst.start()
    lst.register("ask_screen", "ctrl+alt+q", lambda: None)
    lst.register("ask_region", "ctrl+alt+r", lambda: None)
    lst.unregister("ask_region")
    rival = _grab_elsewhere(xvfb_display.display, "r", X.ControlMask | X.Mod1Mask)  # free again
    rival.close()
    thread = lst._thread
    assert thread is not None and thread.is_alive()
    lst.stop(timeout=10)
    assert not thread.is_alive()
    rival = _grab_elsewhere(xvfb_display.display, "q", X.ControlMask | X.Mod1Mask)  # released on stop
    rival.close()
    with pytest.raises(HotkeyUnavailable):
        lst.register("ask_screen", "ctrl+alt+q", lambda: None)
    lst.stop()  # twice is fine


def test_factory_picks_xlib_and_reports_missing_display(xvfb_display: XvfbDisplay, monkeypatch) -> None:
    lst = create_listener("auto")
    try:
        assert isinstance(lst, XlibHotkeyListener)
    finally:
        lst.stop()
    monkeypatch.delenv("DISPLAY")
    with pytest.raises(HotkeyUnavailable, match="display"):
        create_listener("xlib")


def test_keyboard_mapping_change_regrabs(xvfb_display: XvfbDisplay, listener: XlibHotkeyListener) -> None:
    """A layout switch moves 'q' to another keycode: the hotkey follows it (MappingNotify -> grab again)."""
    fired: queue.Queue[str] = queue.Queue()
    listener.register("ask_screen", "ctrl+alt+q", _recorder(fired, "ask_screen"))
    other = xdisplay.Display(xvfb_display.display)
    try:
        old = other.keysym_to_keycode(XK.XK_q)
        first, last = other.display.info.min_keycode, other.display.info.max_keycode
        mapping = other.get_keyboard_mapping(first, last - first + 1)
        free = next(first + i for i, syms in enumerate(mapping) if not any(syms) and first + i != old)
        width = len(mapping[0])
        before = listener.mapping_changes
        other.change_keyboard_mapping(free, [(XK.XK_q, XK.XK_Q) + (0,) * (width - 2)])
        other.change_keyboard_mapping(old, [(0,) * width])
        other.sync()
        deadline = time.monotonic() + WAIT
        while listener.mapping_changes < before + 2:
            assert time.monotonic() < deadline, "the listener never saw the mapping change"
            time.sleep(0.01)
        assert listener._grabs["ask_screen"][0] == free
        xvfb_display.xdotool("key", "ctrl+alt+q")  # xdotool looks 'q' up in the new mapping: keycode `free`
        assert fired.get(timeout=WAIT) == "ask_screen"
    finally:
        other.close()


def test_stop_from_a_callback(xvfb_display: XvfbDisplay) -> None:
    lst = XlibHotkeyListener()
    lst.start()
    done: queue.Queue[str] = queue.Queue()

    def quit_now() -> None:
        lst.stop()
        done.put("stopped")

    lst.register("quit", "ctrl+alt+x", quit_now)
    xvfb_display.xdotool("key", "ctrl+alt+x")
    assert done.get(timeout=WAIT) == "stopped"
    assert lst._thread is not None
    lst._thread.join(WAIT)
    assert not lst._thread.is_alive()
