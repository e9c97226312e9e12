"""Object confirmation: HOG on motion regions, and the ONNX path with a tiny
model built here (no weights are downloaded or shipped)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from common.config import ConfirmConfig, DetectConfig
from services.detect.confirm import HogConfirmer, OnnxConfirmer, crop_regions
from services.detect.evalset import Sequence
from services.detect.pipeline import Detector


class CountingHog(HogConfirmer):
    def __init__(self) -> None:
        super().__init__(ConfirmConfig(method="hog"))
        self.regions: list[list[list[float]]] = []

    def confirm(self, image, boxes):  # type: ignore[no-untyped-def]
        self.regions.append(boxes)
        return super().confirm(image, boxes)


def test_hog_runs_only_on_motion_and_at_most_every_interval(trees: Sequence) -> None:
    hog = CountingHog()
    det = Detector(DetectConfig(confirm={"method": "hog", "interval_ms": 500}), confirmer=hog)
    labels: set[str] = set()
    for i, path in enumerate(trees.frames):
        bgr = cv2.imread(str(path))
        res = det.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), i / trees.fps,
                          image=lambda b=bgr: b)
        for c in res.changes:
            labels.update(c.labels)
        if i < 243:
            assert hog.regions == []  # nothing moved: HOG never ran
    # The person is on screen ~1 s: at most one run per 0.5 s of capture time.
    assert 1 <= len(hog.regions) <= 3
    assert all(b for b in hog.regions)
    assert det.confirm_runs == len(hog.regions)


def test_confirmation_regions_grow_the_motion_box_inside_the_frame() -> None:
    regions = crop_regions([[0.9, 0.5, 0.2, 0.6]], 320, 240)
    assert regions and all(0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 240
                           for x0, y0, x1, y1 in regions)


def tiny_yolo(path: Path, size: int = 32) -> None:
    """A YOLOv8-layout model (1, 4 + 80 classes, 2 anchors) whose output does
    not depend on the picture: a person at 0.9 and a car at 0.95."""
    onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the tiny model")
    from onnx import TensorProto, helper, numpy_helper

    const = np.zeros((1, 84, 2), np.float32)
    const[0, :4, 0] = [16, 16, 8, 16]
    const[0, 4 + 0, 0] = 0.9  # person
    const[0, :4, 1] = [8, 8, 4, 4]
    const[0, 4 + 2, 1] = 0.95  # car
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["m", "shape"], ["m3"]),
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node("Add", ["z", "dets"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, 2])],
        [numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape"),
         numpy_helper.from_array(np.zeros((1,), np.float32), "zero"),
         numpy_helper.from_array(const, "dets")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, str(path))


def test_onnx_model_confirms_the_wanted_class(tmp_path: Path) -> None:
    tiny_yolo(tmp_path / "tiny.onnx")
    cfg = ConfirmConfig(method="onnx", model=str(tmp_path / "tiny.onnx"), input_size=32)
    found = OnnxConfirmer(cfg).confirm(np.zeros((240, 320, 3), np.uint8), [[0.4, 0.4, 0.1, 0.1]])
    assert [d.label for d in found] == ["person"]  # the car is not in `classes`
    assert found[0].score == pytest.approx(0.9)
    x, y, w, h = found[0].box
    assert 0 <= x <= 1 and 0 <= y <= 1 and w > 0 and h > 0
    both = ConfirmConfig(method="onnx", model=str(tmp_path / "tiny.onnx"), input_size=32,
                         classes=["person", "car"])
    assert sorted(d.label for d in OnnxConfirmer(both).confirm(
        np.zeros((240, 320), np.uint8), [[0.4, 0.4, 0.1, 0.1]])) == ["car", "person"]


def test_onnx_label_makes_the_event_alert(tmp_path: Path) -> None:
    tiny_yolo(tmp_path / "tiny.onnx")
    det = Detector(DetectConfig(frames_to_start=1, confirm={
        "method": "onnx", "model": str(tmp_path / "tiny.onnx"), "input_size": 32,
        "require_label": True}))
    changes = []
    for i in range(25):
        img = np.full((240, 320), 120, np.uint8)
        if i >= 15:
            cv2.rectangle(img, (100 + 3 * i, 80), (140 + 3 * i, 160), 30, -1)
        res = det.process(img, i / 15, image=lambda im=img: im)
        changes += res.changes
    start = next(c for c in changes if c.phase == "start")
    assert start.alert is False  # not confirmed yet when it started
    assert any(c.phase == "update" and c.alert and c.labels == ["person"] for c in changes)


def test_onnx_missing_or_invalid_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs the path"):
        OnnxConfirmer(ConfirmConfig(method="onnx"))
    with pytest.raises(ValueError, match="file not found"):
        OnnxConfirmer(ConfirmConfig(method="onnx", model=str(tmp_path / "none.onnx")))
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07 this is not a model")
    with pytest.raises(ValueError, match="not an ONNX model OpenCV can load"):
        OnnxConfirmer(ConfirmConfig(method="onnx", model=str(tmp_path / "bad.onnx")))
    with pytest.raises(ValueError, match="not an ONNX model"):
        Detector(DetectConfig(confirm={"method": "onnx", "model": str(tmp_path / "bad.onnx")}))
