"""Camera shake: measure how far the view moved and move it back.

A camera swaying on its pole moves the whole picture by a few pixels, and
every edge in the scene then looks like motion. The shift is measured from
row and column profiles (the mean of each column, of each row), the classic
cheap way to stabilise video: 1-D signals, a search over a few pixels each
way, a parabola through the best three for the sub-pixel part. Profiles are
compared by their derivative, normalised, so a change of light (a gain, an
offset) does not look like a shift.

The picture is cut into four bands each way and each band gives its own
estimate; the median of the four is the shift. A car or a person changes the
profile of the band it is in and is outvoted by the others, where a single
whole-image profile would follow the traffic.

The reference is a slow running mean (about half a minute) of the profiles
as they come (not realigned: realigning would feed each error back into the
reference). Slow, because a fast one would follow a 0.3 Hz sway instead of
settling on the rest position. Rotation is not measured: a few tenths of a
degree is under a pixel at the working size, which the detector's 3x3 band
absorbs.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

BANDS = 1
MIN_GAIN = 0.5  # the best shift's mismatch over that of no shift, at most


def _slopes(profiles: np.ndarray) -> np.ndarray:
    """Per band (row of ``profiles``): derivative, zero mean, unit spread."""
    d = np.diff(profiles, axis=1)
    d -= d.mean(axis=1, keepdims=True)
    norm = np.sqrt((d * d).mean(axis=1, keepdims=True))
    return d / np.maximum(norm, 1e-3)


def _band_shifts(ref: np.ndarray, cur: np.ndarray, max_shift: int) -> np.ndarray:
    """Per band, the sub-pixel s with cur[i] ~ ref[i - s]."""
    n = ref.shape[1]
    inner = ref[:, max_shift: n - max_shift]  # (bands, m)
    windows = sliding_window_view(cur, n - 2 * max_shift, axis=1)  # (bands, 2k+1, m)
    costs = ((windows - inner[:, None, :]) ** 2).sum(axis=2)  # (bands, 2k+1)
    k = np.argmin(costs, axis=1)
    out = k.astype(np.float64) - max_shift
    # A shift must explain the change far better than no shift; traffic
    # changes the profile too, and then the best shift is barely better.
    # (A sub-pixel to one-pixel shift is let through: the detector's 3x3 band
    # tolerates it either way.)
    unsure = ((costs[np.arange(len(k)), k] > MIN_GAIN * costs[:, max_shift])
              & (np.abs(k - max_shift) >= 2))
    for b, kb in enumerate(k):
        if 0 < kb < costs.shape[1] - 1:
            c0, c1, c2 = costs[b, kb - 1], costs[b, kb], costs[b, kb + 1]
            den = c0 - 2 * c1 + c2
            if den > 1e-9:
                out[b] += 0.5 * (c0 - c2) / den
    out[unsure] = 0.0
    return out


class Stabiliser:
    """Per camera. ``align`` returns the working image moved back onto the
    reference, and the margin (px) along each edge that has no real
    picture after the move (the caller ignores motion there)."""

    def __init__(self, max_shift: int = 5, alpha: float = 0.003, min_shift: float = 0.3) -> None:
        self.max_shift = max_shift
        self.alpha = alpha
        self.min_shift = min_shift
        self.ref_cols: np.ndarray | None = None
        self.ref_rows: np.ndarray | None = None
        self.frames = 0
        self.shift = (0.0, 0.0)

    def reset(self) -> None:
        self.ref_cols = self.ref_rows = None
        self.shift = (0.0, 0.0)

    def _profiles(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape
        img = image[: h - h % BANDS, : w - w % BANDS]
        hh, ww = img.shape
        # Column means of each horizontal band, row means of each vertical band.
        cols = cv2.resize(img, (ww, BANDS), interpolation=cv2.INTER_AREA).astype(np.float32)
        rows = cv2.resize(img, (BANDS, hh), interpolation=cv2.INTER_AREA).astype(np.float32).T
        return _slopes(cols), _slopes(np.ascontiguousarray(rows))

    def align(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        cols, rows = self._profiles(image)
        if (self.ref_cols is None or self.ref_rows is None
                or self.ref_cols.shape != cols.shape or self.ref_rows.shape != rows.shape):
            self.ref_cols, self.ref_rows = cols, rows
            self.frames = 0
            self.shift = (0.0, 0.0)
            return image, (0, 0)
        dx = float(np.median(_band_shifts(self.ref_cols, cols, self.max_shift)))
        dy = float(np.median(_band_shifts(self.ref_rows, rows, self.max_shift)))
        if max(abs(dx), abs(dy)) > self.max_shift - 1:
            # Best at the end of the search: not a shake (something big in
            # front of the camera, or the camera really moved). Leave it.
            dx = dy = 0.0
        self.shift = (dx, dy)
        # Quicker at first, so the reference settles within seconds of a rebase.
        self.frames += 1
        alpha = max(self.alpha, 1.0 / (self.frames + 1))
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
