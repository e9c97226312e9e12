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


def light_change(frame: np.ndarray, background: np.ndarray,
                 box: tuple[int, int, int, int]) -> float:
    """How many times brighter ``box`` is than the background there: a
    pool of light adds light, where a view that sways or shakes moves the
    same light about (its relit boxes are as bright as before)."""
    x, y, w, h = box
    mb = cv2.mean(background[y:y + h, x:x + w])[0]
    return cv2.mean(frame[y:y + h, x:x + w])[0] / mb if mb > 1.0 else 1.0


# A pool of light, seen by its boxes: how much of the view they must cover
# to look for a field (a headlight's pool covers 2-40 % of the view; what a
# swaying or shaking view passes as relit is a few small boxes), and for how
# long after.
WAKE_AREA = 0.02
FIELD_HOLD = 10  # frames
BLOCK = 5  # samples a side of a block of the field (every 4th pixel: 20 working px)
MOVED = 0.05  # a block's field changed by more since the last frame: the light moves
MIN_SAMPLES = 8  # of a block's 25, or the block is taken as unlit
DEAD_ZONE = 0.12  # a block whose light changed by less is left alone (texture, sway, noise)
# The frame-to-frame noise this many times the scene's unrest is a jolt: the
# whole picture changed at once (the IR light switched, the camera knocked),
# and no field is looked for until the background has learnt the new picture
# (CALM_FRAMES at a learning rate of 0.04 leave 5 % of the old one).
JOLT = 4.0
CALM_FRAMES = 75


class LightField:
    """The light falling on the scene, block by block, while light moves.

    A pool of light (a headlight, a torch) multiplies the background by a
    smooth factor well above the whole frame's gain. The per-box check
    (``relit``) keeps such a pool from raising an event, but the pool's
    faint fringe stays under the threshold and is learnt into the
    background, which then holds a wake of the pool for seconds, raises the
    scene's unrest and hides a person walking in after it. Dividing the frame
    by the field before it is compared and learnt takes the pool away whole.

    The field is the median of frame / background over blocks of samples,
    then a 3x3 median over blocks (a pool spans many blocks, a person a few),
    leaving out the samples of what moved last frame and was not light. A
    block counts only beyond a dead zone (and by more grey levels than half
    the detector's threshold), so texture, sway and noise do not become a
    field. It is looked for only while boxes of light were seen lately
    (``seen``) and never just after a jolt (``jolt``): a scene without a
    pool of light is detected exactly as without this.
    """

    def __init__(self) -> None:
        # Both count camera frames (an analysed frame may stand for several:
        # ``services.detect.rate``).
        self.hold: float = 0
        self.calm: float = 0
        self._last: np.ndarray | None = None  # last field, blocks
        self._run = 0  # frames in a row with boxes of light
        self._seen = False  # boxes of light since the last ``tick``

    def seen(self, area: float) -> None:
        """Boxes of light (brighter or darker by more than the dead zone)
        covering ``area`` (a fraction) of the view. On two frames in a row:
        a pool stays for many, where a car taken for relit on one frame (as
        it leaves the view, its box half background) does not."""
        if area < WAKE_AREA:
            return
        self._seen = True
        self._run += 1
        if self._run >= 2 and self.calm <= 0:
            self.hold = FIELD_HOLD

    def jolt(self) -> None:
        """The whole picture changed from one frame to the next in a way no
        gain explains: what then differs from the background block by block
        is not light moving over the scene, and a field would explain it,
        and whatever moves in it, away."""
        self.reset()
        self.calm = CALM_FRAMES

    def reset(self) -> None:
        self.hold = 0
        self._last = None

    def tick(self, frames: float = 1) -> None:
        """Once an analysed frame, standing for ``frames`` camera frames,
        before its boxes are judged."""
        if self.calm > 0:
            self.calm -= frames
        if not self._seen:
            self._run = 0
        self._seen = False

    def estimate(self, sample_f: np.ndarray, sample_b: np.ndarray, gain: float,
                 skip: np.ndarray | None, floor: float, size: tuple[int, int],
                 frames: float = 1) -> tuple[np.ndarray, np.ndarray] | None:
        """(field at ``size`` (w, h), field on the sample grid), float32, or
        None when no block is lit beyond the dead zone. ``sample_f`` and
        ``sample_b`` are the frame and background sampled every 4th pixel
        from (2, 2), ``skip`` (bool, same shape) the samples to leave out,
        ``floor`` the grey levels a block's change must also exceed;
        ``frames``: the camera frames this one stands for."""
        if self.hold <= 0:
            return None
        self.hold -= frames
        rows, cols = sample_f.shape
        by, bx = rows // BLOCK, cols // BLOCK
        if by < 3 or bx < 3:
            return None
        h, w = by * BLOCK, bx * BLOCK
        b = sample_b[:h, :w] * gain
        ratio = sample_f[:h, :w] / np.maximum(b, 1.0)
        bad = b <= 12.0  # too dark to say (as for the gain)
        if skip is not None:
            bad |= skip[:h, :w]
        ratio[bad] = np.nan
        blocks = ratio.reshape(by, BLOCK, bx, BLOCK).transpose(0, 2, 1, 3).reshape(by, bx, -1)
        # A median of the valid samples of each block: NaN sorts last.
        valid = BLOCK * BLOCK - np.count_nonzero(bad.reshape(by, BLOCK, bx, BLOCK), axis=(1, 3))
        blocks = np.sort(blocks, axis=2)
        mid = np.maximum(valid - 1, 0) // 2
        med = np.take_along_axis(blocks, mid[..., None], axis=2)[..., 0]
        med[valid < MIN_SAMPLES] = 1.0
        med = cv2.medianBlur(np.ascontiguousarray(med, dtype=np.float32), 3)
        level = b.reshape(by, BLOCK, bx, BLOCK).mean(axis=(1, 3))
        change = np.abs(med - 1.0)
        lit = (change > DEAD_ZONE) & (change * level > floor)
        if not lit.any():
            self._last = None
            return None
        med = np.where(lit, med, np.float32(1.0)).astype(np.float32)
        # Only light that moves keeps the field looked for: a field that
        # stays as it is is light that stays, which the background is to
        # learn (``hold`` then runs out and the caller folds the field in).
        if self._last is None or float(np.abs(med - self._last).max()) > MOVED:
            self.hold = FIELD_HOLD
        self._last = med
        full = cv2.resize(med, size, interpolation=cv2.INTER_LINEAR)
        return full, np.ascontiguousarray(full[2::4, 2::4][:rows, :cols])
