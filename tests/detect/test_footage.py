"""The default detector on real frames and on stress cases derived from them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.config import DetectConfig
from services.detect.derived import Headlights
from services.detect.evalset import Sequence, iter_luma, score
from services.detect.events import OnsetBackfill
from services.detect.pipeline import Detector


def run(seq: Sequence, case: str = "none", seed: int = 7,
        **cfg: object) -> tuple[list[bool], list[tuple[int, str]]]:
    """Per-frame motion scored as the benchmark does (an event's onset frames,
    seen before it was confirmed, count as motion), and the event changes."""
    det = Detector(DetectConfig(**cfg))
    onsets = OnsetBackfill(det.start_frames)
    motion, changes = [], []
    for i, luma in enumerate(iter_luma(seq, case, seed)):
        res = det.process(luma, i / seq.fps)
        motion += [m for m, _ in onsets.push(res.motion, res.raw, res.onset, i)]
        changes += [(i, c.phase) for c in res.changes]
    motion += [m for m, _ in onsets.flush()]
    return motion, changes


def test_person_in_waving_trees_opens_an_event_within_3_frames(trees: Sequence) -> None:
    _, changes = run(trees)
    starts = [i for i, phase in changes if phase == "start"]
    assert starts, "the person never opened an event"
    assert 243 <= starts[0] <= 245, changes


def test_waving_tree_alone_opens_no_event(trees: Sequence) -> None:
    motion, changes = run(trees)
    assert [c for c in changes if c[0] < 243] == []
    assert not any(motion[30:242])


@pytest.mark.parametrize("case", ["light_switch", "ir_switch", "dusk"])
def test_global_changes_open_no_event_in_the_empty_scene(trees: Sequence, case: str) -> None:
    motion, changes = run(trees, case)
    assert [c for c in changes if c[0] < 242] == [], case
    assert sum(motion[30:242]) == 0


def test_camera_shake_stays_under_one_percent_false_alarms(trees: Sequence) -> None:
    motion, _ = run(trees, "shake")
    s = score(trees, motion)
    assert s.false_alarm_rate <= 0.01, s
    assert s.recall >= 0.9, s  # the person walks in while the camera shakes


# Several seeds: each is another random scene of the same kind, so a pass is
# not a pass on one lucky draw.
@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize("case", ["shake_sway", "shake_burst", "shake_vibrate", "rain", "snow",
                                  "insects"])
def test_shake_weather_and_insects_stay_under_one_percent_false_alarms(
        trees: Sequence, case: str, seed: int) -> None:
    motion, _ = run(trees, case, seed)
    s = score(trees, motion)
    assert s.false_alarm_rate <= 0.01, s


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_headlights_sweeping_the_night_scene_stay_under_one_percent_false_alarms(
        trees: Sequence, seed: int) -> None:
    motion, _ = run(trees, "headlights", seed)
    s = score(trees, motion)
    # Before the light field: 1.7 % and 2.1 % false alarms on seeds 12 and 14,
    # and the person never found on seed 13 (the pools' wake).
    assert s.false_alarm_rate <= 0.01, s
    assert s.recall >= 0.9, s


def test_light_switch_in_traffic_keeps_finding_cars(highway: Sequence) -> None:
    motion, _ = run(highway, "light_switch")
    s = score(highway, motion)
    assert s.false_alarm_rate <= 0.01
    assert s.recall >= 0.8 and s.precision >= 0.98, s


def test_highway_scores(highway: Sequence) -> None:
    motion, _ = run(highway)
    s = score(highway, motion)
    assert s.f1 >= 0.99, s


def test_running_average_is_fooled_by_the_tree(trees: Sequence) -> None:
    # The comparison the default is built against: the running average fires
    # on the empty tree scene, which is why it is not the default.
    motion, _ = run(trees, algorithm="running_average")
    assert sum(motion[30:242]) > 100


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_the_person_is_found_while_the_camera_sways(trees: Sequence, seed: int) -> None:
    # The person fills half the view: a noise estimate taken against the
    # background rose with him and hid him (recall 0 on most sways).
    motion, _ = run(trees, "shake_sway", seed)
    assert score(trees, motion).recall >= 0.7


def test_the_person_is_found_at_dusk(trees: Sequence) -> None:
    # Coming in at the frame's edge his box grows faster than a track's size
    # ratio allows; the track must follow it anyway.
    motion, changes = run(trees, "dusk")
    assert any(phase == "start" for _, phase in changes)
    assert score(trees, motion).recall >= 0.3


def _night(seq: Sequence, sweeps: list[tuple[float, float, float, float, float, float]],
           seed: int = 5) -> list[np.ndarray]:
    """The headlights case with its sweeps of light set: (start s, length s,
    height of the pool 0..1, radius of the width, gain, direction)."""
    case = Headlights(np.random.default_rng(seed), seq.fps)
    case.sweeps = sweeps
    return [case(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2GRAY), i)
            for i, p in enumerate(seq.frames)]


def _run_frames(seq: Sequence, frames: list[np.ndarray]
                ) -> tuple[list[bool], list[tuple[int, str]]]:
    det = Detector(DetectConfig())
    onsets = OnsetBackfill(det.start_frames)
    motion, changes = [], []
    for i, luma in enumerate(frames):
        res = det.process(luma, i / seq.fps)
        motion += [m for m, _ in onsets.push(res.motion, res.raw, res.onset, i)]
        changes += [(i, c.phase) for c in res.changes]
    motion += [m for m, _ in onsets.flush()]
    return motion, changes


# Strong, wide pools (gain 2-2.6, a third of the view and more) crossing the
# empty night scene one after the other, then the person walks in (frames
# 243-258, 16.2-17.2 s) under a pool or just after one. A pool's faint fringe
# used to be learnt into the background, and its wake raised the threshold so
# far that the person was not seen at all (recall 0), or a pool passing a
# swaying tree was taken for something moving.
SWEEPS = [(2.0, 2.0, 0.3, 0.4, 2.4, 1.0), (6.0, 2.2, 0.6, 0.45, 2.6, -1.0),
          (10.0, 1.8, 0.4, 0.35, 2.0, 1.0)]


@pytest.mark.parametrize("last", [(13.6, 2.2, 0.37, 0.41, 2.6, 1.0),  # ends as he comes
                                  (15.6, 2.0, 0.5, 0.4, 2.2, -1.0)],  # sweeps over him
                         ids=["after", "under"])
def test_a_person_under_headlights_opens_an_event_and_the_sweeps_alone_do_not(
        trees: Sequence, last: tuple[float, float, float, float, float, float]) -> None:
    motion, changes = _run_frames(trees, _night(trees, [*SWEEPS, last]))
    starts = [i for i, phase in changes if phase == "start"]
    assert not any(motion[30:242]), [i for i in range(30, 242) if motion[i]]
    assert starts and 243 <= starts[0] <= 247, changes
    assert score(trees, motion).recall >= 0.8, score(trees, motion)
