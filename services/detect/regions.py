"""Where motion counts: the mask, the zones, and the blobs of a foreground mask.

Everything here works at the working resolution; boxes leave in normalised
``[x, y, w, h]`` (0..1) coordinates so they mean the same at any resolution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from common.config import DetectConfig

log = logging.getLogger(__name__)


def working_size(width: int, height: int, working_height: int) -> tuple[int, int]:
    """(w, h) of the working image: ``working_height`` high (never upscaled),
    aspect kept."""
    h = min(working_height, height)
    w = max(8, round(width * h / height))
    return w, max(8, h)


def polygon_mask(polygon: list[list[float]], size: tuple[int, int]) -> np.ndarray:
    """255 inside a normalised polygon at ``size`` (w, h)."""
    w, h = size
    for x, y in polygon:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"polygon point {[x, y]} is outside 0..1 (normalised coordinates)")
    pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in polygon], np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [pts], 255)
    return mask


def load_mask_image(path: str, size: tuple[int, int]) -> np.ndarray:
    """An image file as an active-area mask: black (< 128) is ignored."""
    if not Path(path).is_file():
        raise ValueError(f"detect.mask_image: {path}: file not found")
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"detect.mask_image: {path}: not an image OpenCV can read")
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.where(img >= 128, 255, 0).astype(np.uint8)


@dataclass(slots=True)
class Zone:
    name: str
    required: bool
    mask: np.ndarray


@dataclass(slots=True)
class Blobs:
    boxes: list[list[float]] = field(default_factory=list)  # normalised [x, y, w, h]
    area: float = 0.0  # moving fraction of the active area
    pixels: int = 0
    zones: list[str] = field(default_factory=list)
    fg: np.ndarray | None = None  # the masked foreground the blobs came from
    # Moving pixels of each box's own blobs (specks under the blob size and
    # other boxes' blobs that reach into its rectangle are not its own).
    box_pixels: list[int] = field(default_factory=list)


class Regions:
    """The active area (config masks, mask image) and zones at one working size."""

    def __init__(self, config: DetectConfig, size: tuple[int, int], max_boxes: int = 16) -> None:
        self.size = size
        w, h = size
        self.max_boxes = max_boxes
        active = np.full((h, w), 255, np.uint8)
        for polygon in config.masks:
            active[polygon_mask(polygon, size) > 0] = 0
        if config.mask_image:
            active = cv2.bitwise_and(active, load_mask_image(config.mask_image, size))
        self.active: np.ndarray | None = None if active.all() else active
        self.active_pixels = max(1, int(np.count_nonzero(active)))
        self.zones = [Zone(z.name, z.required, polygon_mask(z.polygon, size))
                      for z in config.zones]
        self.set_min_area(config.min_trigger_area)
        # 8-connected blobs are at most one per 2x2 pixels: 16 bits hold
        # their labels up to ~260 000 pixels (320x240 and more).
        self._label_type = cv2.CV_16U if w * h // 4 < 65535 else cv2.CV_32S

    def set_min_area(self, min_trigger_area: float) -> None:
        # Speckles smaller than this are noise, not objects (a quarter of the
        # trigger area, at least 3 pixels).
        self.min_blob = max(3, round(0.25 * min_trigger_area * self.active_pixels))

    def blobs(self, fg: np.ndarray) -> Blobs:
        if self.active is not None:
            fg = cv2.bitwise_and(fg, self.active)
        rx, ry, rw, rh = cv2.boundingRect(fg)  # of the moving pixels
        if not rw:
            return Blobs(fg=fg)
        # Labelled within that box only (most of the picture is still), its
        # corner on even pixels so that the 2x2 blocks of the labelling are
        # those of the whole picture and the blobs come in the same order.
        # OpenCV's default labelling (Spaghetti), asked for by name to get
        # 16-bit labels, which it writes in half the time of 32-bit ones.
        x0, y0 = rx & ~1, ry & ~1
        _n, _, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
            fg[y0:ry + rh, x0:rx + rw], 8, self._label_type, cv2.CCL_SPAGHETTI)
        keep = stats[1:][stats[1:, cv2.CC_STAT_AREA] >= self.min_blob]
        keep[:, cv2.CC_STAT_LEFT] += x0
        keep[:, cv2.CC_STAT_TOP] += y0
        if not len(keep):
            return Blobs(fg=fg)
        pixels = int(keep[:, cv2.CC_STAT_AREA].sum())
        boxes = _merge(keep[:, :5].tolist(), margin=max(2, self.size[1] // 30))
        boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        w, h = self.size
        norm = [[round(x / w, 4), round(y / h, 4), round(bw / w, 4), round(bh / h, 4)]
                for x, y, bw, bh, _ in boxes[: self.max_boxes]]
        zones = [z.name for z in self.zones
                 if cv2.countNonZero(cv2.bitwise_and(fg, z.mask)) >= self.min_blob]
        return Blobs(norm, pixels / self.active_pixels, pixels, zones, fg,
                     [b[4] for b in boxes[: self.max_boxes]])


def _merge(boxes: list[list[int]], margin: int) -> list[list[int]]:
    """Merge boxes ``[x, y, w, h, pixels]`` that overlap or lie within
    ``margin`` of each other (the pieces of one car or person), until none
    do; a merged box's pixels are the sum of its pieces'."""
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        out: list[list[int]] = []
        for b in boxes:
            for o in out:
                if (b[0] <= o[0] + o[2] + margin and o[0] <= b[0] + b[2] + margin
                        and b[1] <= o[1] + o[3] + margin and o[1] <= b[1] + b[3] + margin):
                    x0, y0 = min(b[0], o[0]), min(b[1], o[1])
                    x1, y1 = max(b[0] + b[2], o[0] + o[2]), max(b[1] + b[3], o[1] + o[3])
                    o[:] = [x0, y0, x1 - x0, y1 - y0, o[4] + b[4]]
                    merged = True
                    break
            else:
                out.append(list(b))
        boxes = out
    return boxes
