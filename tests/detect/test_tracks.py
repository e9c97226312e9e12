"""Tracks: what lasts and travels opens events; loitering and line crossing."""

from __future__ import annotations

import numpy as np

from common.config import DetectConfig
from services.detect.events import OnsetBackfill
from services.detect.pipeline import Detector
from services.detect.regions import Regions
from services.detect.tracks import HOLD_SECONDS, Tracker


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


def test_a_piece_of_a_confirmed_track_is_confirmed_at_once() -> None:
    tr = tracker()
    for i in range(4):  # someone walking: confirmed
        news = tr.update(i / 15, [[0.1 + 0.02 * i, 0.4, 0.1, 0.3]])
    assert news.confirmed == 1
    # The box breaks in two: the legs go on as the track, the head is a new
    # box on the person's last box, and counts from its first frame.
    news = tr.update(4 / 15, [[0.18, 0.55, 0.1, 0.15], [0.17, 0.38, 0.06, 0.06]])
    assert news.confirmed == 2 and news.fresh == 0
    # Something new elsewhere is not.
    news = tr.update(5 / 15, [[0.2, 0.55, 0.1, 0.15], [0.17, 0.38, 0.06, 0.06],
                              [0.7, 0.1, 0.05, 0.05]])
    assert news.confirmed == 2


def test_a_track_confirmed_by_its_own_travel_is_news_once() -> None:
    tr = tracker()
    fresh = [tr.update(i / 15, [[0.1 + 0.02 * i, 0.4, 0.1, 0.3]]).fresh for i in range(6)]
    assert fresh == [0, 0, 1, 0, 0, 0]


def test_held_lasts_a_moment_after_the_last_confirmed_sighting() -> None:
    tr = tracker()
    for i in range(4):
        tr.update(i / 15, [[0.1 + 0.02 * i, 0.4, 0.1, 0.3]])
    gone = 3 / 15
    assert tr.update(gone + HOLD_SECONDS - 0.05, []).held
    assert not tr.update(gone + HOLD_SECONDS + 0.05, []).held
    assert not tracker().update(0.0, [[0.5, 0.5, 0.1, 0.1]]).held  # never a confirmed one


def _scene() -> np.ndarray:
    bg = np.full((120, 160), 90, np.uint8)
    bg[::8] = 60  # texture, so a grey square is not a change of light
    return bg


def _walk(frame: np.ndarray, i: int, start: int, x0: int, y: int = 40) -> None:
    x = x0 + 3 * (i - start)
    frame[y:y + 40, x:x + 16] = 200


def test_an_open_event_does_not_count_what_no_track_explains() -> None:
    """Someone walks through and leaves; a light then flickers in place while
    the event is still open. The flicker never makes a track of its own, so
    once the person's track is a second gone it neither counts as motion
    nor keeps the event open (before, any motion in an open event did)."""
    det = Detector(DetectConfig(quiet_seconds=3.0))
    fps = 15
    rows = []
    for i in range(200):
        frame = _scene()
        if 20 <= i < 50:
            _walk(frame, i, 20, 10)
        if i >= 60 and i % 2 == 0:  # a lamp blinking, from 0.7 s after the person left
            frame[10:22, 130:142] = 230
        res = det.process(frame, i / fps)
        rows.append((i, res.raw, res.motion, [c.phase for c in res.changes]))
    flicker = [r for r in rows if r[0] > 50 + HOLD_SECONDS * fps and r[1]]
    assert flicker, "the flicker was not seen at all: the test shows nothing"
    assert not any(r[2] for r in flicker), flicker
    ends = [r[0] for r in rows if "end" in r[3]]
    # Quiet 3 s after the last motion that counted, a moment after the person.
    assert ends and ends[0] <= 50 + (HOLD_SECONDS + 3) * fps + 2, rows


def test_a_second_person_in_an_open_event_counts_from_the_first_frame() -> None:
    det = Detector(DetectConfig(quiet_seconds=5.0))
    onsets = OnsetBackfill(det.start_frames)
    motion = []
    for i in range(130):
        frame = _scene()
        if 10 <= i < 40:
            _walk(frame, i, 10, 10)
        if 70 <= i < 100:  # 2 s after the first left, the event still open
            _walk(frame, i, 70, 10, y=60)
        res = det.process(frame, i / 15)
        motion += [m for m, _ in onsets.push(res.motion, res.raw, res.onset, i)]
    motion += [m for m, _ in onsets.flush()]
    assert all(motion[71:100]), [i for i in range(70, 100) if not motion[i]]
    assert not any(motion[41:70])
