"""Rectangles in screen pixels: where the popup goes, which monitor holds a point, normalised drags.

Pure functions (no Tk, no mss) so the placement rules are tested without a display.
A rect is (left, top, width, height) in virtual-desktop coordinates, which may be
negative on multi-monitor setups.
"""

from __future__ import annotations

Rect = tuple[int, int, int, int]

GAP = 12  # pixels between the captured area and the popup


def contains(rect: Rect, x: int, y: int) -> bool:
    left, top, w, h = rect
    return left <= x < left + w and top <= y < top + h


def monitor_for(point: tuple[int, int], monitors: list[Rect]) -> Rect:
    """The monitor holding `point`, else the one nearest to it (a point can sit in a gap between monitors)."""
    x, y = point
    for m in monitors:
        if contains(m, x, y):
            return m

    def dist2(m: Rect) -> int:
        left, top, w, h = m
        dx = max(left - x, 0, x - (left + w - 1))
        dy = max(top - y, 0, y - (top + h - 1))
        return dx * dx + dy * dy

    return min(monitors, key=dist2)


def drag_rect(x0: int, y0: int, x1: int, y1: int) -> Rect:
    """The rectangle between a press and the current pointer, whichever way the user dragged."""
    return min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)


def clamp_rect(rect: Rect, bounds: Rect) -> Rect:
    """`rect` cut to `bounds` (width/height 0 when they do not overlap)."""
    left, top, w, h = rect
    bl, bt, bw, bh = bounds
    x0, y0 = max(left, bl), max(top, bt)
    x1, y1 = min(left + w, bl + bw), min(top + h, bt + bh)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def place_popup(size: tuple[int, int], target: Rect, monitor: Rect) -> tuple[int, int]:
    """Top-left corner for a popup of `size` near `target`, fully inside `monitor`.

    Tries below, right of, above and left of the captured area (the area stays
    visible); when none fits (a whole-monitor capture), centres on the target.
    The result is always clamped inside the monitor.
    """
    pw, ph = size
    tl, tt, tw, th = target
    ml, mt, mw, mh = monitor
    candidates = [
        (tl, tt + th + GAP, "x"),  # below, sliding sideways to stay on screen
        (tl + tw + GAP, tt, "y"),  # right, sliding up or down
        (tl, tt - ph - GAP, "x"),  # above
        (tl - pw - GAP, tt, "y"),  # left
    ]
    for x, y, slide in candidates:
        if slide == "x":
            x = min(max(x, ml), ml + mw - pw)
        else:
            y = min(max(y, mt), mt + mh - ph)
        inside = ml <= x <= ml + mw - pw and mt <= y <= mt + mh - ph
        if inside and not _overlaps((x, y, pw, ph), target):
            return x, y
    x = tl + (tw - pw) // 2
    y = tt + (th - ph) // 2
    return _clamp_point(x, y, pw, ph, monitor)


def _clamp_point(x: int, y: int, w: int, h: int, monitor: Rect) -> tuple[int, int]:
    ml, mt, mw, mh = monitor
    x = max(ml, min(x, ml + mw - w))
    y = max(mt, min(y, mt + mh - h))
    return x, y


def _overlaps(a: Rect, b: Rect) -> bool:
    return clamp_rect(a, b)[2] > 0 and clamp_rect(a, b)[3] > 0
