"""Camera shake: measure how far the view moved and move it back.

A camera swaying on its pole moves the whole picture by a few pixels, and
every edge in the scene then looks like motion. The shift is measured from
row and column profiles (the mean of each column, of each row), the classic
cheap way to stabilise video: 1-D signals, a search over a few pixels each
way, a parabola through the best three for the sub-pixel part. Profiles are
compared by their derivative, normalised, so a change of light (a gain, an
offset) does not look like a shift.

The reference is a slow running mean (about half a minute) of the profiles
as they come (not realigned: realigning would feed each error back into the
reference). Slow, because a fast one would follow a 0.3 Hz sway instead of
settling on the rest position. Rotation is not measured: a few tenths of a
degree is under a pixel at the working size, which the detector's 3x3 band
absorbs.
"""

from __future__ import annotations

import math
from functools import cache

import cv2
import numpy as np

from services.detect.rate import per_frame

MIN_GAIN = 0.7  # the best shift's mismatch over that of no shift, at most


def _mean(values: np.ndarray) -> np.float32:
    """``values.mean()`` of a float32 array, to the bit (the same sum,
    divided in float64 and rounded back), without np.mean's own overhead,
    which is most of its cost on a profile of 160 values."""
    return np.float32(float(np.add.reduce(values, axis=None)) / values.size)


def _slope(profile: np.ndarray) -> np.ndarray:
    """Derivative, zero mean, unit spread."""
    d = profile[1:] - profile[:-1]
    d -= _mean(d)
    norm = float(np.sqrt(np.dot(d, d) / len(d)))
    return d / max(norm, 1e-3)


@cache
def _windows(n: int, max_shift: int) -> np.ndarray:
    """Indices of the 2 * max_shift + 1 windows of a profile of n values."""
    return np.arange(2 * max_shift + 1)[:, None] + np.arange(n - 2 * max_shift)[None, :]


def _shift(ref: np.ndarray, cur: np.ndarray, max_shift: int) -> float:
    """The sub-pixel s with cur[i] ~ ref[i - s]."""
    n = len(ref)
    inner = ref[max_shift: n - max_shift]
    # Every window of ``cur`` at once; vecdot takes the same float32 dot per
    # row as np.dot one window at a time did (the loop cost 11 calls an axis).
    diff = cur.take(_windows(n, max_shift))
    diff -= inner
    costs = np.vecdot(diff, diff).astype(np.float64).tolist()
    k = costs.index(min(costs))
    # A shift must explain the change far better than no shift; traffic
    # changes the profile too, and then the best shift is barely better.
    # (A sub-pixel to one-pixel shift is let through: the detector's 3x3 band
    # tolerates it either way.)
    if abs(k - max_shift) >= 2 and costs[k] > MIN_GAIN * costs[max_shift]:
        return 0.0
    out = float(k - max_shift)
    if 0 < k < len(costs) - 1:
        c0, c1, c2 = costs[k - 1], costs[k], costs[k + 1]
        den = c0 - 2 * c1 + c2
        if den > 1e-9:
            out += 0.5 * (c0 - c2) / den
    return out


class Stabiliser:
    """Per camera. ``align`` returns the working image moved back onto the
    reference, and the margin (px) along each edge that has no real
    picture after the move (the caller ignores motion there). ``alpha`` is
    per camera frame; the detector sets ``ratio`` (``services.detect.rate``)
    so the reference follows over the same time at any analysis rate."""

    def __init__(self, max_shift: int = 5, alpha: float = 0.003, min_shift: float = 0.3) -> None:
        self.max_shift = max_shift
        self.alpha = alpha
        self.min_shift = min_shift
        self.ref_cols: np.ndarray | None = None
        self.ref_rows: np.ndarray | None = None
        self.frames = 0
        self.shift = (0.0, 0.0)
        self.ratio = 1  # camera frames this frame stands for, set by the detector

    def reset(self) -> None:
        self.ref_cols = self.ref_rows = None
        self.shift = (0.0, 0.0)

    @staticmethod
    def _profiles(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cols = cv2.reduce(image, 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F)[0]
        rows = cv2.reduce(image, 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F)[:, 0]
        return _slope(cols), _slope(rows)

    def align(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        cols, rows = self._profiles(image)
        if (self.ref_cols is None or self.ref_rows is None
                or self.ref_cols.shape != cols.shape or self.ref_rows.shape != rows.shape):
            self.ref_cols, self.ref_rows = cols, rows
            self.frames = 0
            self.shift = (0.0, 0.0)
            return image, (0, 0)
        dx = _shift(self.ref_cols, cols, self.max_shift)
        dy = _shift(self.ref_rows, rows, self.max_shift)
        if max(abs(dx), abs(dy)) > self.max_shift - 1:
            # Best at the end of the search: not a shake (something big in
            # front of the camera, or the camera really moved). Leave it.
            dx = dy = 0.0
        self.shift = (dx, dy)
        # Quicker at first, so the reference settles within seconds of a rebase
        # (the mean of the profiles so far: a count of frames at any rate).
        self.frames += 1
        alpha = max(per_frame(self.alpha, self.ratio), 1.0 / (self.frames + 1))
        for ref, cur in ((self.ref_cols, cols), (self.ref_rows, rows)):
            ref *= 1.0 - alpha
            ref += alpha * cur
        if abs(dx) < self.min_shift and abs(dy) < self.min_shift:
            return image, (0, 0)
        m = np.array([[1, 0, -dx], [0, 1, -dy]], np.float32)
        # The strip the move uncovers keeps the unmoved picture, not a smear
        # of the edge: once the shaking stops it is right again, and the
        # background never learns a smear.
        image = cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), dst=image.copy(),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        return image, (math.ceil(abs(dx)) + 1, math.ceil(abs(dy)) + 1)
