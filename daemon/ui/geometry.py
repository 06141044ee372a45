"""Rectangles in screen pixels: where the popup goes, which monitor holds a point, normalised drags.

Pure functions (no Tk, no mss) so the placement rules are tested without a display.
A rect is (left, top, width, height) in virtual-desktop coordinates, which may be
negative on multi-monitor setups.
"""

from __future__ import annotations

Rect = tuple[int, int, int, int]

GAP = 12  # pixels between the captured area and the popup
MARGIN = 16  # pixels between a popup in a corner and the edges of the work area


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


def place_popup(size: tuple[int, int], target: Rect, monitor: Rect, *, work: Rect | None = None,
                cursor: tuple[int, int] | None = None, avoid: list[Rect] | tuple[Rect, ...] = ()) -> tuple[int, int]:
    """Top-left corner for a popup of `size` near `target`, fully inside the monitor's work area.

    `work` is the part of `monitor` not taken by taskbars and panels (the monitor when unknown). Tries below,
    right of, above and left of the captured area (the area stays visible). When none fits, as for a
    whole-monitor capture, the popup goes to the corner of the work area that hides least: the one covering
    the fewest of `avoid` (other popups still open), then the farthest from `cursor` (where the user was
    looking when they pressed the hotkey), then bottom right. The result is always inside the work area.
    """
    area = clamp_rect(work, monitor) if work is not None else monitor
    if area[2] <= 0 or area[3] <= 0:
        area = monitor
    pw, ph = size
    tl, tt, tw, th = target
    ml, mt, mw, mh = area
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
    return corner_away((pw, ph), area, cursor, avoid)


def corner_away(size: tuple[int, int], area: Rect, cursor: tuple[int, int] | None = None,
                avoid: list[Rect] | tuple[Rect, ...] = ()) -> tuple[int, int]:
    """The corner of `area` (inset by `MARGIN`) for a popup that covers the least of `avoid`, then lies
    farthest from `cursor`; ties go to bottom right, then top right, bottom left, top left."""
    pw, ph = size
    al, at, aw, ah = area
    right, bottom = al + aw - pw - MARGIN, at + ah - ph - MARGIN
    left, top = al + MARGIN, at + MARGIN
    corners = [(right, bottom), (right, top), (left, bottom), (left, top)]
    corners = [_clamp_point(x, y, pw, ph, area) for x, y in corners]

    def cost(pos: tuple[int, int]) -> tuple[int, int]:
        rect = (pos[0], pos[1], pw, ph)
        covered = sum(_area(clamp_rect(rect, other)) for other in avoid)
        if cursor is None:
            return covered, 0
        cx, cy = pos[0] + pw // 2, pos[1] + ph // 2
        return covered, -((cx - cursor[0]) ** 2 + (cy - cursor[1]) ** 2)

    return min(corners, key=cost)  # min() keeps the first of equals: the order above breaks ties


def _area(rect: Rect) -> int:
    return rect[2] * rect[3]


def _clamp_point(x: int, y: int, w: int, h: int, monitor: Rect) -> tuple[int, int]:
    ml, mt, mw, mh = monitor
    x = max(ml, min(x, ml + mw - w))
    y = max(mt, min(y, mt + mh - h))
    return x, y


def _overlaps(a: Rect, b: Rect) -> bool:
    return clamp_rect(a, b)[2] > 0 and clamp_rect(a, b)[3] > 0
