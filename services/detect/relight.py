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

import numpy as np

MIN_TEXTURE = 4.0  # grey levels of spread the background must have to compare


def relit(frame: np.ndarray, background: np.ndarray, box: tuple[int, int, int, int],
          min_correlation: float = 0.7) -> bool:
    """True when the pixels of ``box`` (x, y, w, h, working pixels) are the
    background under other light rather than something new."""
    x, y, w, h = box
    f = frame[y:y + h, x:x + w].astype(np.float32)
    b = background[y:y + h, x:x + w].astype(np.float32)
    if f.size < 16:
        return False
    b = b - b.mean()
    f = f - f.mean()
    sb = float(np.sqrt((b * b).mean()))
    sf = float(np.sqrt((f * f).mean()))
    if sb < MIN_TEXTURE or sf < 1e-3:
        return False
    return float((b * f).mean()) / (sb * sf) >= min_correlation
