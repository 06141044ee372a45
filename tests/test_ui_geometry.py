"""Popup placement and rectangle helpers: near the captured area, never off screen, negative origins."""

from __future__ import annotations

from qwen_tray.ui.geometry import GAP, clamp_rect, drag_rect, monitor_for, place_popup

MON = (0, 0, 1920, 1080)


def inside(pos: tuple[int, int], size: tuple[int, int], mon: tuple[int, int, int, int]) -> bool:
    return mon[0] <= pos[0] and pos[0] + size[0] <= mon[0] + mon[2] and mon[1] <= pos[1] and pos[1] + size[1] <= (
        mon[1] + mon[3]
    )


def test_popup_goes_below_a_region_with_room() -> None:
    assert place_popup((500, 400), (100, 100, 300, 200), MON) == (100, 100 + 200 + GAP)


def test_popup_goes_right_when_no_room_below() -> None:
    pos = place_popup((500, 400), (100, 700, 300, 350), MON)
    assert pos == (100 + 300 + GAP, 1080 - 400)  # slid up to stay on screen
    assert inside(pos, (500, 400), MON)


def test_popup_goes_above_or_left_near_the_bottom_right_corner() -> None:
    pos = place_popup((500, 400), (1500, 700, 400, 360), MON)
    assert inside(pos, (500, 400), MON)
    assert pos[1] + 400 <= 700 or pos[0] + 500 <= 1500  # does not cover the captured area


def test_whole_monitor_capture_centres_the_popup() -> None:
    assert place_popup((500, 400), MON, MON) == (710, 340)


def test_negative_origin_monitor() -> None:
    left_mon = (-1280, -200, 1280, 1024)
    pos = place_popup((500, 400), (-1280, -200, 1280, 1024), left_mon)
    assert pos == (-1280 + 390, -200 + 312)
    pos = place_popup((500, 400), (-300, 700, 250, 100), left_mon)
    assert inside(pos, (500, 400), left_mon)


def test_popup_bigger_than_monitor_is_pinned_to_its_top_left() -> None:
    assert place_popup((2000, 1200), (10, 10, 10, 10), MON) == (0, 0)


def test_monitor_for_point_and_gap() -> None:
    mons = [(0, 0, 1920, 1080), (1920, 0, 1280, 1024), (-1280, 0, 1280, 1024)]
    assert monitor_for((2000, 10), mons) == mons[1]
    assert monitor_for((-5, 500), mons) == mons[2]
    assert monitor_for((2500, 1050), mons) == mons[1]  # below the shorter monitor: nearest


def test_drag_rect_any_direction() -> None:
    assert drag_rect(300, 250, 100, 100) == (100, 100, 200, 150)
    assert drag_rect(100, 100, 300, 250) == (100, 100, 200, 150)


def test_clamp_rect() -> None:
    assert clamp_rect((-10, -10, 50, 50), MON) == (0, 0, 40, 40)
    assert clamp_rect((3000, 0, 10, 10), MON)[2] == 0
