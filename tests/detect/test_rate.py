"""The detector analysing every 2nd frame of a 30 fps camera (capture.lores_fps
= 15) holds, learns and confirms over the same time as on every frame."""

from __future__ import annotations

import pytest

from common.config import DetectConfig
from services.detect.evalset import Sequence, iter_luma
from services.detect.pipeline import Detector
from services.detect.rate import per_frame


def events(seq: Sequence, step: int, frames: int) -> list[tuple[str, float, str]]:
    """(phase, capture time, reason) of each start and end, analysing every
    ``step``-th frame, each said to stand for ``frames`` camera frames."""
    det = Detector(DetectConfig())
    out = []
    for i, luma in enumerate(iter_luma(seq)):
        if i % step:
            continue
        res = det.process(luma, i / seq.fps, frames=frames)
        out += [(c.phase, c.ts, c.reason) for c in res.changes if c.phase != "update"]
    return out


def test_highway_at_15_fps_ends_its_event_after_the_same_quiet_and_opens_the_next(
        highway: Sequence) -> None:
    """Two cars apart: at 30 fps the first event ends after quiet_seconds
    of quiet and the second car opens another; analysed at 15 fps, the
    skipped frames counted, the same two events start and end at the same
    times, within a few frames."""
    assert highway.fps == 30
    every = events(highway, 1, 1)
    half = events(highway, 2, 2)
    assert [(p, r) for p, _, r in every] == [("start", ""), ("end", "quiet"), ("start", "")]
    assert [(p, r) for p, _, r in half] == [(p, r) for p, _, r in every], half
    # The end after the same quiet, to the frame; the second car's start
    # within a few frames (it moves twice as far between analysed frames).
    assert abs(every[1][1] - half[1][1]) <= 1 / 15, (every, half)
    assert abs(every[2][1] - half[2][1]) <= 0.2, (every, half)
    # The footage does tell the two apart: counted per analysed frame (the
    # detector before it knew of skipped frames), the background learns and
    # tracks live twice as long in seconds, and the gap between the cars
    # never ends the first event.
    naive = events(highway, 2, 1)
    assert [p for p, _, _ in naive] == ["start"], naive


def test_a_rate_per_frame_over_two_frames_is_the_rate_applied_twice() -> None:
    a = 0.04
    assert per_frame(a, 1) == a
    assert per_frame(a, 2) == pytest.approx(1 - (1 - a) * (1 - a))


@pytest.mark.parametrize("frames", [0, -1, 601])
def test_a_frame_standing_for_no_camera_frame_or_too_many_is_a_clear_error(frames: int
                                                                          ) -> None:
    import numpy as np

    det = Detector(DetectConfig())
    with pytest.raises(ValueError, match=f"1 to 600 camera frames, not {frames}"):
        det.process(np.zeros((120, 160), np.uint8), 0.0, frames=frames)
