"""Tracks: what lasts and travels opens events; loitering and line crossing."""

from __future__ import annotations

import numpy as np

from common.config import DetectConfig
from services.detect.pipeline import Detector
from services.detect.regions import Regions
from services.detect.tracks import Tracker


def tracker(**cfg: object) -> Tracker:
    config = DetectConfig(**cfg)
    return Tracker(config, Regions(config, (160, 120)).zones)


def test_an_object_walking_is_confirmed_after_three_frames() -> None:
    tr = tracker()
    seen = [tr.update(i / 15, [[0.1 + 0.02 * i, 0.4, 0.1, 0.3]]).confirmed for i in range(5)]
    assert seen == [0, 0, 1, 1, 1]


def test_a_flicker_in_place_is_never_confirmed() -> None:
    tr = tracker()
    seen = [tr.update(i / 15, [[0.5, 0.5, 0.05, 0.05]] if i % 2 == 0 or i % 3 == 0 else []).confirmed
            for i in range(60)]
    assert sum(seen) == 0


def test_something_jumping_further_than_its_size_is_never_confirmed() -> None:
    rng = np.random.default_rng(3)
    tr = tracker()
    seen = []
    for i in range(100):  # an insect at the lens: a new place every frame
        x, y = rng.uniform(0, 0.9, 2)
        seen.append(tr.update(i / 15, [[float(x), float(y), 0.04, 0.04]]).confirmed)
    assert sum(seen) == 0


def test_loitering_is_reported_once_per_track_after_the_zone_time() -> None:
    zone = {"name": "Porch", "polygon": [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]],
            "loiter_seconds": 2.0}
    tr = tracker(zones=[zone])
    reports = []
    for i in range(90):  # 6 s, swaying inside the zone
        x = 0.1 + 0.05 * (i % 10 < 5) + 0.01 * (i % 5)
        news = tr.update(i / 15, [[x, 0.3, 0.1, 0.3]])
        if news.loitering:
            reports.append((i, news.loitering))
    assert len(reports) == 1, reports
    i, loiter = reports[0]
    assert 2.0 <= loiter["Porch"] < 2.3 and 30 <= i <= 36


def test_line_crossing_has_a_direction() -> None:
    line = {"name": "Gate", "points": [[0.5, 0.0], [0.5, 1.0]], "direction": "any"}
    tr = tracker(lines=[line])
    crossings = []
    for i in range(40):  # left to right, then back
        x = 0.2 + 0.03 * i if i < 20 else 0.8 - 0.03 * (i - 20)
        crossings += tr.update(i / 15, [[x, 0.4, 0.1, 0.2]]).crossings
    # The line runs down the picture: its right (as walked from top to bottom)
    # is the left half of the picture, so left-to-right is forward.
    assert crossings == ["Gate:forward", "Gate:backward"]
    only = tracker(lines=[dict(line, direction="backward")])
    crossings = []
    for i in range(20):
        crossings += only.update(i / 15, [[0.2 + 0.03 * i, 0.4, 0.1, 0.2]]).crossings
    assert crossings == []


def test_required_loiter_zone_alerts_only_once_someone_stayed() -> None:
    zone = {"name": "Porch", "polygon": [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]],
            "loiter_seconds": 2.0, "required": True}
    det = Detector(DetectConfig(zones=[zone], quiet_seconds=5.0))
    bg = np.full((120, 160), 90, np.uint8)
    bg[::8] = 60  # texture, so a grey square is not a change of light
    changes = []
    for i in range(120):
        frame = bg.copy()
        if i >= 20:  # someone arrives and shuffles about on the porch
            x = 10 + (i % 12) * 2
            frame[40:90, x:x + 20] = 200
        res = det.process(frame, i / 15)
        changes += [(i, c.phase, c.alert, dict(c.loitering)) for c in res.changes]
    start = [c for c in changes if c[1] == "start"]
    alerts = [c for c in changes if c[2]]
    assert start and not start[0][2], changes  # the event starts, not yet an alert
    first = alerts[0]
    assert first[3].get("Porch", 0) >= 2.0 and 20 + 30 <= first[0] <= 20 + 40, changes
