"""Event machine, masks and zones, user detectors: pure logic on synthetic frames."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from common.config import DetectConfig
from services.detect.events import EventMachine
from services.detect.pipeline import Detector
from services.detect.regions import Regions, polygon_mask
from services.detect.user import load_user_detector, normalise_result

BOX = [[0.1, 0.1, 0.2, 0.2]]


def steps(em: EventMachine, frames: list[tuple[float, bool]]) -> list[tuple[float, str, str]]:
    out = []
    for ts, moving in frames:
        _, changes = em.step(ts, moving, BOX if moving else [], 0.05 if moving else 0.0, 0.5,
                             ["door"] if moving else [])
        out += [(c.ts, c.phase, c.reason) for c in changes]
    return out


def test_event_needs_consecutive_frames_and_ends_after_quiet() -> None:
    em = EventMachine(DetectConfig(frames_to_start=3, quiet_seconds=1.0))
    # A 2-frame blip never starts; 3 in a row do, at the third frame's ts.
    got = steps(em, [(0.0, True), (0.1, True), (0.2, False), (0.3, True), (0.4, True),
                     (0.5, True), (0.6, False), (1.4, False), (1.6, False)])
    assert got == [(0.5, "start", ""), (1.6, "end", "quiet")]


def test_max_event_time_ends_and_asks_for_a_new_background() -> None:
    em = EventMachine(DetectConfig(frames_to_start=1, max_event_time=2.0))
    got = steps(em, [(t / 10, True) for t in range(25)])
    ends = [(ts, r) for ts, p, r in got if p == "end"]
    assert ends == [(2.0, "max_time")]
    assert em.rebase_requested
    # Motion after the re-base is a new event, not the old one going on.
    assert [p for _, p, _ in got].count("start") == 2


def test_updates_are_rate_limited() -> None:
    em = EventMachine(DetectConfig(frames_to_start=1, update_seconds=0.5))
    got = steps(em, [(t / 10, True) for t in range(12)])
    assert [ts for ts, p, _ in got if p == "update"] == [0.5, 1.0]


def test_cooldown_blocks_a_new_event() -> None:
    em = EventMachine(DetectConfig(frames_to_start=1, quiet_seconds=0.0, cooldown_seconds=5.0))
    got = steps(em, [(0.0, True), (0.1, False), (1.0, True), (6.0, True)])
    assert [p for _, p, _ in got] == ["start", "end", "start"]
    assert got[-1][0] == 6.0


def test_required_zone_and_label_gate_the_alert() -> None:
    cfg = DetectConfig(frames_to_start=1, zones=[
        {"name": "door", "polygon": [[0, 0], [1, 0], [1, 1]], "required": True}],
        confirm={"method": "hog", "require_label": True})
    em = EventMachine(cfg)
    _, changes = em.step(0.0, True, BOX, 0.05, 0.5, ["door"])
    assert changes[0].phase == "start" and changes[0].alert is False  # no label yet
    update = em.add_labels(0.1, {"person": 0.9})
    assert update[0].alert is True and update[0].labels == ["person"]
    em2 = EventMachine(cfg)
    em2.step(0.0, True, BOX, 0.05, 0.5, ["street"])
    assert em2.add_labels(0.1, {"person": 0.9})[0].alert is False  # wrong zone


def moving_square(det: Detector, x: int, y: int, frames: int = 30) -> list:
    results = []
    rng = np.random.default_rng(1)
    for i in range(frames):
        img = np.full((240, 320), 100, np.uint8)
        img += rng.integers(0, 3, img.shape, dtype=np.uint8)
        if i >= 15:
            cv2.rectangle(img, (x + i, y), (x + i + 40, y + 60), 20, -1)
        results.append(det.process(img, i / 15))
    return results


def test_mask_hides_motion_and_zones_are_named() -> None:
    free = moving_square(Detector(DetectConfig(zones=[
        {"name": "left", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}])), 40, 60)
    assert any(r.motion for r in free)
    assert "left" in next(r for r in free if r.motion).zones
    masked = moving_square(Detector(DetectConfig(masks=[[[0, 0], [0.6, 0], [0.6, 1], [0, 1]]])),
                           40, 60)
    assert not any(r.motion for r in masked)


def test_mask_image_black_is_ignored(tmp_path: Path) -> None:
    mask = np.full((120, 160), 255, np.uint8)
    mask[:, :100] = 0
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    res = moving_square(Detector(DetectConfig(mask_image=str(tmp_path / "m.png"))), 40, 60)
    assert not any(r.motion for r in res)


def test_bad_masks_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        DetectConfig(masks=[[[0, 0], [1.5, 0], [1, 1]]])
    with pytest.raises(ValueError, match="outside 0..1"):
        polygon_mask([[0, 0], [2, 0], [1, 1]], (160, 120))
    with pytest.raises(ValueError, match="file not found"):
        Regions(DetectConfig(mask_image=str(tmp_path / "none.png")), (160, 120))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not an image"):
        Detector(DetectConfig(mask_image=str(tmp_path / "bad.png")))


def test_wrong_frame_type_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="uint8 luma"):
        Detector(DetectConfig()).process(np.zeros((10, 10, 3), np.uint8), 0.0)


def test_frame_size_change_starts_a_new_background() -> None:
    det = Detector(DetectConfig())
    for i in range(5):
        det.process(np.full((240, 320), 90, np.uint8), i)
    res = det.process(np.full((120, 160), 30, np.uint8), 6)
    assert not res.motion and det.regions.size == (160, 120)


@pytest.fixture()
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "mydetect.py").write_text(textwrap.dedent("""
        calls = []
        def dark(frame):
            return bool(frame.mean() < 50)
        def boxes(frame):
            return [[10, 20, 40, 60]] if frame.mean() < 50 else []
        def nothing():
            calls.append(1)
            return False
        def two(a, b):
            return True
        def weird(frame):
            return "yes"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mydetect", None)
    return "mydetect"


def test_user_detector_bool_boxes_and_no_argument(user_module: str) -> None:
    dark = np.full((240, 320), 10, np.uint8)
    assert load_user_detector(f"{user_module}:dark")(dark) == (True, [])
    found, boxes = load_user_detector(f"{user_module}:boxes")(dark)
    assert found and boxes == [[10 / 320, 20 / 240, 40 / 320, 60 / 240]]
    assert load_user_detector(f"{user_module}:nothing")(dark) == (False, [])
    det = Detector(DetectConfig(detector=f"{user_module}:boxes", frames_to_start=1))
    res = det.process(dark, 0.0)
    assert res.motion and res.changes[0].phase == "start"
    assert res.boxes[0][0] == pytest.approx(10 / 320, abs=0.01)


def test_user_detector_errors_are_clear(user_module: str) -> None:
    for spec, msg in [("nocolon", "not module:function"), ("nosuchmod:f", "cannot import"),
                      (f"{user_module}:missing", "no function"),
                      (f"{user_module}:two", "no argument or one")]:
        with pytest.raises(ValueError, match=msg):
            load_user_detector(spec)
    with pytest.raises(TypeError, match="want a bool"):
        load_user_detector(f"{user_module}:weird")(np.zeros((4, 4), np.uint8))
    assert normalise_result([[0.5, 0.5, 0.9, 0.9]], 10, 10)[1] == [[0.5, 0.5, 0.5, 0.5]]
