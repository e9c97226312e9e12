"""The night whose motion never stops (a spider web at the lens) is told once,
and cleared once it stops; a busy day, or a night with ordinary comings and
goings, is not."""

from __future__ import annotations

import cv2
import pytest

from common.config import CameraHealthConfig
from services.detect.evalset import Sequence
from services.detect.tamper import CameraHealth

FPS = 4.0


def night_kinds(trees: Sequence, pattern: list[tuple[float, bool, bool]]) -> list[tuple[str, bool]]:
    """Feed the (real, gently moving) picture for each (seconds, night,
    moving) stretch; the night_motion findings, in order."""
    health = CameraHealth(CameraHealthConfig(night_motion_minutes=1.0))
    frames = [cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (160, 120))
              for p in trees.frames[:60]]
    found, ts, i = [], 0.0, 0
    for seconds, night, moving in pattern:
        for _ in range(int(seconds * FPS)):
            picture = frames[i % len(frames)]
            i += 1
            found += health.frame(picture, ts, night, moving)
            ts += 1 / FPS
    return [(f.kind, f.all_clear) for f in found if f.kind == "night_motion"]


def test_endless_night_motion_is_told_once_then_cleared(trees: Sequence) -> None:
    kinds = night_kinds(trees, [(90, True, True), (20, True, False)])
    assert kinds == [("night_motion", False), ("night_motion", True)]


@pytest.mark.parametrize("pattern", [
    [(120, False, True)],  # a busy day
    [(10, True, True), (10, True, False)] * 6,  # people coming and going at night
])
def test_ordinary_motion_is_not_endless(trees: Sequence, pattern: list[tuple[float, bool, bool]]
                                        ) -> None:
    assert night_kinds(trees, pattern) == []
