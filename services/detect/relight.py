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
    if float(cv2.meanStdDev(b)[1][0, 0]) < MIN_TEXTURE:
        return False
    if float(cv2.meanStdDev(f)[1][0, 0]) < 1e-3:
        return False
    f32 = f if f.dtype == np.float32 else f.astype(np.float32)
    b32 = b if b.dtype == np.float32 else b.astype(np.float32)
    corr = float(cv2.matchTemplate(f32, b32, cv2.TM_CCOEFF_NORMED)[0, 0])
    return corr >= min_correlation
