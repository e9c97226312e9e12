"""Object confirmation: a second stage run on the motion regions only.

``hog``: OpenCV's built-in HOG + linear SVM people detector (Dalal & Triggs;
no download, needs opencv < 5). ``onnx``: a YOLO (v5 or v8 output layout) or
SSD (``[1, 1, N, 7]``) ONNX model the user supplies, run through OpenCV DNN.
Nothing is downloaded and no weights ship with pisentry.

Regions: each motion box is grown by a margin (motion boxes cut people at the
limbs) and cropped from the best picture available; a person detector sees
the crop scaled so a person filling it is at least its window high, which is
what lets a 64x128 HOG window find a person 40 pixels high in the frame.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

if TYPE_CHECKING:
    from common.config import ConfirmConfig

log = logging.getLogger(__name__)

COCO = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic_light", "fire_hydrant", "stop_sign", "parking_meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports_ball", "kite", "baseball_bat", "baseball_glove", "skateboard", "surfboard", "tennis_racket", "bottle", "wine_glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot_dog", "pizza", "donut", "cake", "chair", "couch", "potted_plant", "bed", "dining_table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell_phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy_bear", "hair_drier", "toothbrush"]


@dataclass(slots=True)
class Detection:
    label: str
    score: float
    box: list[float]  # normalised [x, y, w, h] in the full frame


class Confirmer(Protocol):
    def confirm(self, image: np.ndarray, boxes: list[list[float]]) -> list[Detection]:
        """Objects found in the regions ``boxes`` (normalised) of ``image``."""
        ...


def crop_regions(boxes: list[list[float]], width: int, height: int, margin: float = 0.3,
                 max_regions: int = 3) -> list[tuple[int, int, int, int]]:
    """Pixel rectangles (x0, y0, x1, y1) around the largest motion boxes."""
    out = []
    for x, y, w, h in sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)[:max_regions]:
        mx, my = w * margin + 0.02, h * margin + 0.02
        x0, y0 = max(0.0, x - mx), max(0.0, y - my)
        x1, y1 = min(1.0, x + w + mx), min(1.0, y + h + my)
        r = (int(x0 * width), int(y0 * height), math.ceil(x1 * width), math.ceil(y1 * height))
        if r[2] - r[0] >= 8 and r[3] - r[1] >= 8:
            out.append(r)
    return out


class HogConfirmer:
    """People only. Score: the logistic of the SVM margin, so the default
    ``min_score`` 0.5 is the SVM's own decision boundary."""

    WIN_H = 128

    def __init__(self, config: ConfirmConfig, max_side: int = 320) -> None:
        if not hasattr(cv2, "HOGDescriptor"):
            raise ValueError("detect.confirm.method = 'hog' needs opencv-python-headless < 5 "
                             "(5.0 dropped the HOG detector)")
        self.min_score = config.min_score
        self.max_side = max_side
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def confirm(self, image: np.ndarray, boxes: list[list[float]]) -> list[Detection]:
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        height, width = gray.shape
        found: list[Detection] = []
        for x0, y0, x1, y1 in crop_regions(boxes, width, height):
            crop = gray[y0:y1, x0:x1]
            ch, cw = crop.shape
            # A person filling the crop's height must cover the 128-px window;
            # cap the crop so a big region costs no more than a small one.
            scale = max(self.WIN_H * 1.15 / ch, 1.0)
            scale = min(scale, self.max_side / max(ch, cw)) if max(ch, cw) * scale > \
                self.max_side else scale
            if ch * scale < self.WIN_H or cw * scale < 64:
                pad_h = max(0, self.WIN_H + 16 - round(ch * scale))
                pad_w = max(0, 80 - round(cw * scale))
            else:
                pad_h = pad_w = 0
            img = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) \
                if scale != 1.0 else crop
            if pad_h or pad_w:
                img = cv2.copyMakeBorder(img, pad_h // 2, pad_h - pad_h // 2, pad_w // 2,
                                         pad_w - pad_w // 2, cv2.BORDER_REPLICATE)
            rects, weights = self.hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8),
                                                       scale=1.1)
            for (rx, ry, rw, rh), wt in zip(rects, np.ravel(weights) if len(rects) else []):
                score = 1.0 / (1.0 + math.exp(-2.0 * float(wt)))
                if score < self.min_score:
                    continue
                px = x0 + (rx - pad_w // 2) / scale
                py = y0 + (ry - pad_h // 2) / scale
                found.append(Detection("person", round(score, 4),
                                       [px / width, py / height, rw / scale / width,
                                        rh / scale / height]))
        return found


class OnnxConfirmer:
    """A user-supplied detector through OpenCV DNN (no onnxruntime needed)."""

    def __init__(self, config: ConfirmConfig) -> None:
        path = Path(config.model).expanduser()
        if not config.model:
            raise ValueError("detect.confirm.model: method 'onnx' needs the path of an ONNX model")
        if not path.is_file():
            raise ValueError(f"detect.confirm.model: {path}: file not found")
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            first = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else "cv2 error"
            raise ValueError(f"detect.confirm.model: {path}: not an ONNX model OpenCV can load "
                             f"({first})") from None
        self.size = config.input_size
        self.names = list(config.class_names) or list(COCO)
        self.wanted = set(config.classes)
        unknown = self.wanted - set(self.names)
        if unknown:
            raise ValueError(f"detect.confirm.classes: {sorted(unknown)} not in the model's "
                             "class_names")
        self.min_score = config.min_score
        self._layout_warned = False

    def confirm(self, image: np.ndarray, boxes: list[list[float]]) -> list[Detection]:
        bgr = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        height, width = bgr.shape[:2]
        found: list[Detection] = []
        for x0, y0, x1, y1 in crop_regions(boxes, width, height, max_regions=1):
            # Square crop at least the model's size (Frigate's region rule), so
            # small objects are not shrunk below what the model can see.
            side = min(max(x1 - x0, y1 - y0, self.size), max(width, height))
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            sx0 = min(max(0, cx - side // 2), max(0, width - side))
            sy0 = min(max(0, cy - side // 2), max(0, height - side))
            crop = bgr[sy0:sy0 + side, sx0:sx0 + side]
            ch, cw = crop.shape[:2]
            blob = cv2.dnn.blobFromImage(crop, 1 / 255.0, (self.size, self.size), swapRB=True)
            self.net.setInput(blob)
            out = np.asarray(self.net.forward(), np.float32)
            for label, score, (bx, by, bw, bh) in self._parse(out):
                found.append(Detection(label, round(score, 4),
                                       [(sx0 + bx * cw) / width, (sy0 + by * ch) / height,
                                        bw * cw / width, bh * ch / height]))
        return found

    def _parse(self, out: np.ndarray) -> list[tuple[str, float, tuple[float, ...]]]:
        """Detections as (label, score, box normalised to the crop)."""
        res: list[tuple[str, float, tuple[float, ...]]] = []
        n = len(self.names)
        if out.ndim == 4 and out.shape[-1] == 7:  # SSD: [img, cls, score, x0, y0, x1, y1]
            for _, cls, score, x0, y0, x1, y1 in out.reshape(-1, 7):
                self._keep(res, int(cls), float(score), (x0, y0, x1 - x0, y1 - y0))
            return res
        rows = out.reshape(out.shape[-2], out.shape[-1]) if out.ndim >= 2 else out[None]
        if rows.shape[0] in (n + 4, n + 5) and rows.shape[1] not in (n + 4, n + 5):
            rows = rows.T  # YOLOv8 exports (1, 4 + classes, anchors)
        if rows.shape[1] == n + 5:  # YOLOv5: cx, cy, w, h, objectness, classes
            scores = rows[:, 5:] * rows[:, 4:5]
        elif rows.shape[1] == n + 4:  # YOLOv8: cx, cy, w, h, classes
            scores = rows[:, 4:]
        else:
            if not self._layout_warned:
                self._layout_warned = True
                log.warning("ONNX output %s matches neither YOLO nor SSD with %d classes; "
                            "set detect.confirm.class_names", out.shape, n)
            return res
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(rows)), cls]
        for i in np.flatnonzero(best >= self.min_score):
            cx, cy, w, h = (float(v) / self.size for v in rows[i, :4])
            self._keep(res, int(cls[i]), float(best[i]), (cx - w / 2, cy - h / 2, w, h))
        return res

    def _keep(self, res: list[tuple[str, float, tuple[float, ...]]], cls: int, score: float,
              box: tuple[float, ...]) -> None:
        if 0 <= cls < len(self.names) and score >= self.min_score \
                and self.names[cls] in self.wanted:
            res.append((self.names[cls], score, tuple(float(v) for v in box)))


def make_confirmer(config: ConfirmConfig) -> Confirmer | None:
    if config.method == "hog":
        return HogConfirmer(config)
    if config.method == "onnx":
        return OnnxConfirmer(config)
    return None
