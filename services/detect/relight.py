"""Light moving over the scene is not something moving in it.

Headlights sweeping a wall, a torch beam or a cloud's edge brighten part of
the picture: the gain compensation of the whole frame cannot explain a local
pool of light, so its edge crosses the detector's threshold and travels like
an object. But a pool of light only scales what was there: inside the box the
new picture is the background times a smooth factor, so the texture of the
two still matches (their normalised correlation is high), where a person or
a car covers the background's texture with their own.

A flat background has no texture to compare; there a change is left to count
as motion (a person in front of a white wall must still fire).
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_TEXTURE = 4.0  # grey levels of spread the background must have to compare
CHECK_MARGIN = 0.01  # correlations this near the threshold are taken from matchTemplate


def relit(frame: np.ndarray, background: np.ndarray, box: tuple[int, int, int, int],
          min_correlation: float = 0.7) -> bool:
    """True when the pixels of ``box`` (x, y, w, h, working pixels) are the
    background under other light rather than something new."""
    x, y, w, h = box
    f = frame[y:y + h, x:x + w]
    b = background[y:y + h, x:x + w]
    if f.size < 16:
        return False
    # A few OpenCV calls instead of a dozen numpy temporaries: this runs for
    # every box on every frame with motion.
    mb, sb = (float(v[0, 0]) for v in cv2.meanStdDev(b))
    if sb < MIN_TEXTURE:
        return False
    mf, sf = (float(v[0, 0]) for v in cv2.meanStdDev(f))
    if sf < 1e-3:
        return False
    # The correlation from the means and spreads in float64 (one product
    # more), a fraction of what matchTemplate's DFT costs; it differs from
    # matchTemplate's by ~1e-5 at most on the footage, so only a box within
    # CHECK_MARGIN of the threshold asks matchTemplate, whose answer decides
    # as it always did.
    cov = cv2.mean(cv2.multiply(f, b, dtype=cv2.CV_64F))[0] - mf * mb
    corr = cov / (sf * sb)
    if abs(corr - min_correlation) > CHECK_MARGIN:
        return corr >= min_correlation
    f32 = f if f.dtype == np.float32 else f.astype(np.float32)
    b32 = b if b.dtype == np.float32 else b.astype(np.float32)
    corr = float(cv2.matchTemplate(f32, b32, cv2.TM_CCOEFF_NORMED)[0, 0])
    return corr >= min_correlation
