"""Short-lived tracks of what moves: persistence, loitering, line crossing.

A greedy nearest-centre tracker on the detector's boxes (normalised
``[x, y, w, h]``), frame to frame. A box joins the track whose last box is
nearest, when the centres are closer than the larger box's diagonal and the
sizes are alike; a track lives through ``MAX_MISSES`` frames without a box.
Frame counts here (``MAX_MISSES``, ``min_hits``) are camera frames: an
analysed frame counts for the ``ratio`` camera frames it stands for
(``services.detect.rate``), so a track lives and is confirmed over the same
time analysed at 15 fps as at the camera's 30.

What it is for: a person or a car moves less than its own size from one
frame to the next and keeps its size, so it makes one track that lasts and
travels. A rain streak, a snowflake at the lens or an insect fluttering in
the IR light jumps further than its size between frames or is gone the next
frame, so it never makes a track that lasts; a flickering light lasts but
stays where it is. A track is *confirmed* (counts for an event) once it has
``min_hits`` boxes and has travelled (its centre moved by ``MIN_TRAVEL`` of
the frame, or its size changed by half: someone walking at the camera).
A track born on the box of a confirmed one that is still alive (a person's
box broken in two, or grown past the size ratio) is that one's continuation
and confirmed from its first box; anything else that moves while an event is
open (a pool of light, the background's wake) must earn its own confirmation
before it counts.

The same tracks give zone *loitering* (a confirmed track whose ground point,
the bottom centre of its box, stays in a zone for the zone's
``loiter_seconds``: reported once per track and zone) and *line crossing*
(its ground point goes from one side of a configured line segment to the
other, across the segment; "forward" is from the right of the line's first
point->second point to its left, as seen in the picture).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from services.detect.rate import reached

if TYPE_CHECKING:
    from common.config import DetectConfig
    from services.detect.regions import Zone

MAX_MISSES = 2
MIN_TRAVEL = 0.02  # of the frame's width/height
MIN_GROWTH = 1.5  # box area ratio that counts as travel (coming at the camera)
MAX_SIZE_RATIO = 4.0  # box areas of one track, frame to frame
# What moves in an open event counts for it within this long of a confirmed
# track's last sighting: someone lost for a moment (low contrast at dusk,
# behind a post, a track broken by a quick step) is still the same someone.
HOLD_SECONDS = 1.0


@dataclass(slots=True)
class Track:
    track_id: int
    first_ts: float
    last_ts: float
    first_center: tuple[float, float]
    first_area: float
    box: list[float]
    hits: float = 1  # the first box, then ``ratio`` camera frames a box
    misses: float = 0  # camera frames since its last box
    confirmed: bool = False
    entered: dict[str, float] = field(default_factory=dict)  # zone -> ts the ground point went in
    loitered: set[str] = field(default_factory=set)
    ground: tuple[float, float] = (0.0, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2


@dataclass(slots=True)
class TrackNews:
    """What one frame's tracks say."""

    confirmed: int = 0  # confirmed tracks seen on this frame
    held: bool = False  # a confirmed track was seen within the last HOLD_SECONDS
    fresh: int = 0  # tracks confirmed by their own travel on this frame
    loitering: dict[str, float] = field(default_factory=dict)  # zone -> seconds, newly reached
    crossings: list[str] = field(default_factory=list)  # "Line:forward" / "Line:backward"


def _area(box: list[float]) -> float:
    return max(box[2] * box[3], 1e-6)


def _nested(a: list[float], b: list[float]) -> bool:
    """Whether the larger box holds the smaller one's centre: something
    coming in at the frame's edge, or out of the dark, grows faster than any
    size ratio allows while it stays one thing."""
    small, large = (a, b) if _area(a) <= _area(b) else (b, a)
    cx, cy = small[0] + small[2] / 2, small[1] + small[3] / 2
    return large[0] <= cx <= large[0] + large[2] and large[1] <= cy <= large[1] + large[3]


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _grown(box: list[float], by: float = 0.25) -> list[float]:
    return [box[0] - by * box[2], box[1] - by * box[3], box[2] * (1 + 2 * by),
            box[3] * (1 + 2 * by)]


def _side(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def _crosses(p: tuple[float, float], q: tuple[float, float], a: tuple[float, float],
             b: tuple[float, float]) -> bool:
    """Whether the step p -> q crosses the segment a-b."""
    d1, d2 = _side(p, a, b), _side(q, a, b)
    d3, d4 = _side(a, p, q), _side(b, p, q)
    return d1 * d2 < 0 and d3 * d4 < 0


class Tracker:
    def __init__(self, config: DetectConfig, zones: list[Zone]) -> None:
        self.min_hits = config.frames_to_start + 1
        self.zones = zones
        self.loiter = {z.name: z.loiter_seconds for z in config.zones if z.loiter_seconds > 0}
        self.lines = [(ln.name, (ln.points[0][0], ln.points[0][1]),
                       (ln.points[1][0], ln.points[1][1]), ln.direction) for ln in config.lines]
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_confirmed = float("-inf")
        self.ratio = 1  # camera frames this frame stands for, set by the detector

    def reset(self) -> None:
        self.tracks = []
        self._last_confirmed = float("-inf")

    def update(self, ts: float, boxes: list[list[float]]) -> TrackNews:
        news = TrackNews()
        free = list(range(len(boxes)))
        # Greedy: the closest (track, box) pairs first.
        pairs = []
        # Each box's centre, diagonal and area once, not once per track.
        sized = [(bi, box, box[0] + box[2] / 2, box[1] + box[3] / 2,
                  math.hypot(box[2], box[3]), _area(box)) for bi, box in enumerate(boxes)]
        for ti, tr in enumerate(self.tracks):
            cx, cy = tr.center
            diag, area = math.hypot(tr.box[2], tr.box[3]), _area(tr.box)
            for bi, box, bx, by, bdiag, barea in sized:
                dist = math.hypot(bx - cx, by - cy)
                if dist > max(diag, bdiag):
                    continue
                ratio = barea / area
                if 1 / MAX_SIZE_RATIO <= ratio <= MAX_SIZE_RATIO or _nested(tr.box, box):
                    pairs.append((dist, ti, bi))
        pairs.sort()
        held = [_grown(t.box) for t in self.tracks if t.confirmed]  # before this frame's boxes
        matched: set[int] = set()
        for _, ti, bi in pairs:
            if ti in matched or bi not in free:
                continue
            matched.add(ti)
            free.remove(bi)
            self._hit(self.tracks[ti], ts, boxes[bi], news)
        for ti, tr in enumerate(self.tracks):
            if ti not in matched:
                tr.misses += self.ratio
        self.tracks = [t for t in self.tracks if not reached(t.misses, MAX_MISSES + 1)]
        for bi in free:
            box = boxes[bi]
            tr = Track(self._next_id, ts, ts, (box[0] + box[2] / 2, box[1] + box[3] / 2),
                       _area(box), list(box))
            tr.ground = self._ground(box)
            self._next_id += 1
            self.tracks.append(tr)
        for tr in self.tracks:
            if not tr.confirmed and tr.misses == 0 and any(_overlap(tr.box, b) for b in held):
                tr.confirmed = True  # a piece of a confirmed track
        news.confirmed = sum(1 for t in self.tracks if t.confirmed and t.misses == 0)
        if news.confirmed:
            self._last_confirmed = ts
        news.held = ts - self._last_confirmed <= HOLD_SECONDS
        return news

    @staticmethod
    def _ground(box: list[float]) -> tuple[float, float]:
        return box[0] + box[2] / 2, box[1] + box[3]

    def _hit(self, tr: Track, ts: float, box: list[float], news: TrackNews) -> None:
        before = tr.ground
        tr.box, tr.last_ts, tr.misses = list(box), ts, 0
        tr.hits += self.ratio
        tr.ground = self._ground(box)
        if not tr.confirmed and reached(tr.hits, self.min_hits):
            cx, cy = tr.center
            travelled = max(abs(cx - tr.first_center[0]), abs(cy - tr.first_center[1]))
            growth = max(_area(box) / tr.first_area, tr.first_area / _area(box))
            tr.confirmed = travelled >= MIN_TRAVEL or growth >= MIN_GROWTH
            news.fresh += tr.confirmed
        if not tr.confirmed:
            return
        for name, a, b, direction in self.lines:
            if _crosses(before, tr.ground, a, b):
                # Right of a->b to its left is "forward" (image y grows downwards).
                way = "forward" if _side(tr.ground, a, b) < 0 else "backward"
                if direction in ("any", way):
                    news.crossings.append(f"{name}:{way}")
        for zone in self.zones:
            if zone.name not in self.loiter:
                continue
            h, w = zone.mask.shape
            gx = min(w - 1, max(0, int(tr.ground[0] * w)))
            gy = min(h - 1, max(0, int(tr.ground[1] * h) - 1))
            if zone.mask[gy, gx] == 0:
                tr.entered.pop(zone.name, None)
                continue
            since = tr.entered.setdefault(zone.name, ts)
            stayed = ts - since
            if stayed >= self.loiter[zone.name] and zone.name not in tr.loitered:
                tr.loitered.add(zone.name)
                news.loitering[zone.name] = round(stayed, 1)

