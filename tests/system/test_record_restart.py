"""record killed just as an event starts: the event still has its clip.

A real pipeline (capture with the synthetic camera's passer-by, detect,
record) under supervisord. record is stopped (SIGSTOP: starved) before a
passer-by comes, so the event's ``Motion`` start reaches a process that
never reads it, then killed (kill -9) as soon as that start is on the bus.
supervisord starts a new record, which never hears the start: it learns the
open event from detect (``OpenEvent``) and writes the clip from the video it
can still get. capture keeps the pre-roll for every camera and replays it
to the new recorder: the synthetic camera's as h264 GOPs (its encoder runs
all the time), a camera that sends JPEGs (MJPEG over HTTP) as its JPEGs. So
the clip holds the seconds the recorder was down and the pre-roll before the
event; what nobody held would be said in the catalogue (``missed``).
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from common.config import parse_config
from tests.capture.mjpeg_server import MjpegCamera
from tests.support import running_pipeline
from tests.system.harness import BusWatch, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PERIOD = 12.0  # a passer-by every PERIOD s, 5 s in view: an event of ~6.5 s, then quiet

RAW: dict[str, Any] = {
    "general": {"services": ["capture", "detect", "record"]},
    "capture": {"source": "synthetic", "width": 320, "height": 240, "fps": 15,
                "object_period": PERIOD, "bitrate": 500_000},
    "detect": {"quiet_seconds": 1.5},
    "record": {"rec_sec_before": 1, "rec_sec_after": 1},
}


def _rows(home: Any, sql: str, *args: Any) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"file:{home.catalogue}?mode=ro", uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _clips_of(home: Any, event_id: str) -> list[sqlite3.Row]:
    return _rows(home, "SELECT * FROM clips WHERE event_id = ? OR id IN (SELECT clip_id "
                       "FROM clip_events WHERE event_id = ?) ORDER BY start", event_id, event_id)


def _first_is_keyframe_and_decodes(path: str) -> int:
    """Frames decoded; the clip's first packet must be a keyframe."""
    with av.open(path) as container:
        first = next(p for p in container.demux(video=0) if p.size)
        assert first.is_keyframe, f"{path} does not start on a keyframe"
    with av.open(path) as container:
        return sum(1 for _ in container.decode(video=0))


def _largest_hole(path: str) -> float:
    """Seconds of the longest stretch between two decoded frames."""
    with av.open(path) as container:
        times = [f.time for f in container.decode(video=0)]
    return max(b - a for a, b in itertools.pairwise(times))


def test_a_record_killed_as_an_event_starts_still_writes_its_clip_with_its_pre_roll() -> None:
    killed_at: list[float] = []
    start, end, clips, holes = _kill_record_as_an_event_starts(RAW, killed_at)
    # capture kept the synthetic camera's h264 (rec_sec_before + 2 + 5 s) and
    # replayed it to the new recorder: the clip starts at the keyframe at or
    # before rec_sec_before ahead of the event, long before the kill.
    before = start.ts - clips[0]["start"]
    assert before >= RAW["record"]["rec_sec_before"] - 0.05, before
    assert clips[0]["start"] < killed_at[0] and clips[0]["missed"] == 0, dict(clips[0])
    # ... and holds the seconds the recorder was down: no hole in its frames.
    assert holes[0] < 0.5, (holes, dict(clips[0]))
    print(f"event {end.ts - start.ts:.1f} s; clip from -{before:.2f} s, killed at "
          f"+{killed_at[0] - start.ts:.2f} s")


def _walker_jpegs(width: int, height: int, fps: float) -> list[bytes]:
    """One PERIOD of the synthetic camera's scene as JPEGs: the passer-by
    walks for 5 s, then the garden is empty."""
    import cv2

    from services.capture.sources.synthetic import SyntheticSource, render_background

    raw = parse_config({"capture": {"width": width, "height": height, "fps": fps,
                                    "object_period": PERIOD}})
    source = SyntheticSource(raw.capture)
    background = render_background(width, height)
    noise = np.random.default_rng(3).integers(0, 6, (8, height, width, 3), dtype=np.uint8)
    out = []
    for i in range(round(PERIOD * fps)):
        frame = cv2.add(background, noise[i % len(noise)])
        box = source.person_box(i / fps)
        if box is not None:
            x, y, w, h = box
            cv2.rectangle(frame, (x, y + h // 5), (x + w, y + h), (90, 50, 40), -1)
            cv2.circle(frame, (x + w // 2, y + h // 10), max(2, h // 10), (120, 150, 190), -1)
        out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return out


def test_a_camera_sending_jpegs_gives_the_restarted_recorder_its_pre_roll() -> None:
    camera = MjpegCamera(_walker_jpegs(320, 240, 15.0), fps=15.0).start()
    killed_at: list[float] = []
    try:
        raw = {**RAW, "capture": {"source": "url", "url": camera.url, "width": 320,
                                  "height": 240, "fps": 15, "bitrate": 500_000},
               "record": {"rec_sec_before": 5, "rec_sec_after": 1}}
        start, end, clips, _ = _kill_record_as_an_event_starts(raw, killed_at)
    finally:
        camera.stop()
    # capture kept rec_sec_before + 2 = 7 s of the camera's JPEGs and encoded them
    # for the new recorder first: its clip starts before it was started.
    assert clips[0]["start"] < killed_at[0], (clips[0]["start"] - start.ts,
                                              killed_at[0] - start.ts)
    print(f"event {end.ts - start.ts:.1f} s; clip from {clips[0]['start'] - start.ts:+.2f} s, "
          f"missed {clips[0]['missed']}")


def _kill_record_as_an_event_starts(raw: dict[str, Any], killed_at: list[float] | None = None
                                    ) -> tuple[Any, Any, list[sqlite3.Row], list[float]]:
    """Run ``raw``, starve record before an event, kill it -9 as the event
    starts; check the event's clips (see the module's words). Returns the
    event's start and end Motion, its clips and each clip's longest stretch
    between two frames (``_largest_hole``)."""
    config = parse_config(raw)
    with running_pipeline(raw) as pipe:
        pipe.wait_healthy(60)
        watch = BusWatch(config, pipe.home).start()
        try:
            wait_until(lambda: watch.finished(), 40, "a first clip")
            # Between passers-by: the last event ended and its clip is finished.
            wait_until(lambda: watch.motions and watch.motions[-1].phase == "end"
                       and watch.finished()[-1].ts >= watch.motions[-1].ts, 30,
                       "a quiet moment")
            seen = len(watch.motions)
            old = pipe.service_pid("record")
            os.kill(old, signal.SIGSTOP)
            try:
                wait_until(lambda: any(m.phase == "start" for m in watch.motions[seen:]),
                           PERIOD + 10, "the next event's start", poll=0.02)
            finally:
                os.kill(old, signal.SIGKILL)
                if killed_at is not None:
                    killed_at.append(time.time())
            start = next(m for m in watch.motions[seen:] if m.phase == "start")
            event = start.event_id
            wait_until(lambda: any(m.phase == "end" and m.event_id == event
                                   for m in watch.motions), 40, "the event's end")
            end = next(m for m in watch.motions if m.phase == "end" and m.event_id == event)
            wait_until(lambda: _clips_of(pipe.home, event) and all(
                c["state"] != "open" for c in _clips_of(pipe.home, event)), 30,
                "the event's clip finished")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{pipe.output()}") from None
        finally:
            watch.stop()
        clips = _clips_of(pipe.home, event)
        assert pipe.service_pid("record") != old
        for c in clips:
            assert _first_is_keyframe_and_decodes(c["path"]) >= 5, dict(c)
            assert Path(c["path"]).exists()
        holes = [_largest_hole(c["path"]) for c in clips]
        # The clip covers the event to its end ...
        assert max(c["end"] for c in clips) >= end.ts - 0.2, [dict(c) for c in clips]
        first = clips[0]
        late = first["start"] - start.ts
        # ... and from its start, or says how much of it nobody held.
        if late > 0.1:
            assert first["missed"] == pytest.approx(late, abs=0.15), dict(first)
        else:
            assert first["missed"] == 0
        ev = _rows(pipe.home, "SELECT * FROM events WHERE id = ?", event)
        assert ev and ev[0]["start"] == pytest.approx(start.ts, abs=0.01), \
            "the catalogue has the event's real start"
    return start, end, clips, holes
