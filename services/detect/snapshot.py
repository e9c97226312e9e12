"""Event snapshots: the picture with the motion boxes, mask and zones drawn."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from common.config import DetectConfig

BOX = (0, 0, 255)  # red: motion
MASK = (128, 128, 128)  # grey: ignored area
ZONE = (0, 200, 255)  # amber: zones


def lores_to_bgr(fmt: str, pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """BGR picture from a lores frame's pixel buffer (1-D uint8)."""
    if fmt == "yuv420":
        return cv2.cvtColor(pixels.reshape(height * 3 // 2, width), cv2.COLOR_YUV2BGR_I420)
    if fmt == "gray":
        return cv2.cvtColor(pixels.reshape(height, width), cv2.COLOR_GRAY2BGR)
    return pixels.reshape(height, width, 3).copy()


def _poly(points: list[list[float]], w: int, h: int) -> np.ndarray:
    return np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in points], np.int32)


def annotate(bgr: np.ndarray, config: DetectConfig, boxes: list[list[float]],
             labels: list[str] = ()) -> np.ndarray:  # type: ignore[assignment]
    """A copy of ``bgr`` with masks, zones and boxes (normalised) drawn."""
    img = bgr.copy()
    h, w = img.shape[:2]
    thick = max(1, round(h / 240))
    for polygon in config.masks:
        cv2.polylines(img, [_poly(polygon, w, h)], True, MASK, thick)
    for zone in config.zones:
        pts = _poly(zone.polygon, w, h)
        cv2.polylines(img, [pts], True, ZONE, thick)
        cv2.putText(img, zone.name, tuple(int(v) for v in pts[0]), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, ZONE, thick)
    for x, y, bw, bh in boxes:
        cv2.rectangle(img, (round(x * w), round(y * h)),
                      (round((x + bw) * w) - 1, round((y + bh) * h) - 1), BOX, thick)
    if labels:
        cv2.putText(img, ", ".join(labels), (4, 14 * thick), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * thick, BOX, thick)
    return img


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
