"""The embedded default camera: an outdoor-like scene that needs no hardware.

A garden with a house and a tree, sensor noise and a slow drift of daylight,
and every ``object_period`` seconds a person-sized figure walking across, so a
new user sees events, clips and alerts within the first minute.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import cv2
import numpy as np

from services.capture.sources import (
    SYNTHETIC_FPS,
    SYNTHETIC_SIZE,
    Captured,
    Pacer,
    Source,
    now_pair,
)

if TYPE_CHECKING:
    from common.config import CaptureConfig

CROSSING_SECONDS = 5.0
NOISE_STEP = 7919  # rows the noise moves each frame: a prime, so it rarely repeats
NOISE_BANDS = 4
BAND_STEP = 104729  # another prime, so the bands of one frame never share noise


def render_background(width: int, height: int) -> np.ndarray:
    img = np.empty((height, width, 3), np.uint8)
    horizon = int(height * 0.45)
    # One colour per row, broadcast along it: no full-size temporaries.
    sky = np.linspace(235, 175, horizon, dtype=np.float32)
    img[:horizon] = np.stack([sky, sky * 0.85 + 20, sky * 0.65 + 30], axis=-1).astype(
        np.uint8)[:, None, :]
    grass = np.linspace(95, 70, height - horizon, dtype=np.float32)
    img[horizon:] = np.stack([grass * 0.45, grass, grass * 0.55], axis=-1).astype(
        np.uint8)[:, None, :]

    def px(x: float, y: float) -> tuple[int, int]:
        return int(x * width), int(y * height)

    cv2.rectangle(img, px(0.55, 0.22), px(0.9, 0.62), (150, 170, 190), -1)  # house
    roof = np.array([px(0.52, 0.24), px(0.725, 0.08), px(0.93, 0.24)], np.int32)
    cv2.fillPoly(img, [roof], (60, 60, 120))
    cv2.rectangle(img, px(0.68, 0.42), px(0.75, 0.62), (40, 70, 100), -1)  # door
    cv2.rectangle(img, px(0.58, 0.3), px(0.65, 0.38), (200, 160, 120), -1)  # window
    cv2.rectangle(img, px(0.17, 0.3), px(0.2, 0.7), (40, 60, 80), -1)  # trunk
    cv2.ellipse(img, px(0.185, 0.26), px(0.09, 0.14), 0, 0, 360, (40, 110, 50), -1)  # crown
    cv2.rectangle(img, px(0.0, 0.74), px(1.0, 0.86), (120, 125, 130), -1)  # path
    return img


class SyntheticSource(Source):
    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        # Any size is this camera's own: the configured one, else its default.
        self.width, self.height = (config.width, config.height) if config.width else \
            SYNTHETIC_SIZE
        self.size = (self.width, self.height)
        self.fps = config.fps or SYNTHETIC_FPS
        self._pacer = Pacer(self.fps)
        self._t0 = time.monotonic()
        self._frame_no = 0

    def open(self) -> None:
        rng = np.random.default_rng(7)
        self._background = render_background(self.width, self.height)
        # One precomputed noise tile (mean 8, spread ~2.8 grey levels) a quarter
        # of the frame high, laid over each quarter from a different row each
        # frame: per-frame random numbers would cost more than the rest of the
        # frame, and a full-size tile 6 MB at 1080p.
        shape = (-(-self.height // NOISE_BANDS), self.width, 3)
        self._noise = rng.integers(0, 9, shape, dtype=np.uint8)
        for row in self._noise:  # a second draw, row by row: no full-size temporary
            row += rng.integers(0, 9, row.shape, dtype=np.uint8)

    def person_box(self, t: float) -> tuple[int, int, int, int] | None:
        """Where the walker is at ``t`` seconds after start, or None."""
        period = self.config.object_period
        k, phase = divmod(t, period)
        if phase >= CROSSING_SECONDS:
            return None
        progress = phase / CROSSING_SECONDS
        if int(k) % 2:
            progress = 1.0 - progress  # alternate directions
        h = int(self.height * 0.32)
        w = max(4, h // 3)
        x = int(-w + progress * (self.width + w))
        y = int(self.height * 0.82) - h
        return x, y, w, h

    def read(self) -> Captured:
        self._pacer.wait()
        t = time.monotonic() - self._t0
        gain = 1.0 + 0.06 * math.sin(2 * math.pi * t / 90.0)  # passing clouds, slowly
        frame = np.empty_like(self._background)  # the receiver owns it
        tile = len(self._noise)
        for band, top in enumerate(range(0, self.height, tile)):
            rows = min(tile, self.height - top)
            k = (self._frame_no * NOISE_STEP + band * BAND_STEP) % tile
            self._add_noise(frame[top:top + rows], self._background[top:top + rows], gain, k)
        self._frame_no += 1
        box = self.person_box(t)
        if box is not None:
            x, y, w, h = box
            cv2.rectangle(frame, (x, y + h // 5), (x + w, y + h), (90, 50, 40), -1)
            cv2.circle(frame, (x + w // 2, y + h // 10), max(2, h // 10), (120, 150, 190), -1)
        ts, pts = now_pair()
        return Captured(frame, ts, pts)

    def _add_noise(self, out: np.ndarray, bg: np.ndarray, gain: float, k: int) -> None:
        """out = bg * gain + noise - 8, the noise tile read from row ``k``, wrapping."""
        rows, noise = len(out), self._noise
        first = min(rows, len(noise) - k)
        cv2.addWeighted(bg[:first], gain, noise[k:k + first], 1.0, -8.0, dst=out[:first])
        if first < rows:
            cv2.addWeighted(bg[first:], gain, noise[:rows - first], 1.0, -8.0, dst=out[first:])
