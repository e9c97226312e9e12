"""The detector's time constants when it sees only some of the camera's frames.

The detector's constants are per camera frame: a learning rate per frame, a
count of frames to learn, to settle, to confirm a track or to let it go. They
were tuned on every frame of a 30 fps and of a 15 fps camera. When capture
sends detection only some of them (``capture.lores_fps`` below the camera's
rate: every 2nd frame of a 30 fps camera at 15), an analysed frame stands for
``ratio`` camera frames (itself and those capture let go before it), and each
constant keeps its meaning in the camera's time:

- a rate per frame ``a`` becomes ``1 - (1 - a) ** ratio`` (an exponential
  forgetting ``ratio`` frames at once): the background learns as much per
  second analysed at 15 fps as at 30;
- a count of frames becomes a count of camera frames that each analysed one
  adds ``ratio`` to (``reached``, ``running``): a track confirmed after 3
  boxes 1/30 s apart is confirmed after 2 boxes 1/15 s apart, the same
  67 ms, and one let go after 2 frames without a box after 1.

Why per camera frame and not per second: the constants were tuned per frame
on both the 30 fps highway and the 15 fps trees; read as seconds at 30 fps,
the trees at their own 15 fps lose figures (dusk F1 0.545 -> 0.316,
headlights 1.000 -> 0.821 with 2.9 % false alarms, ``bench/notes.md``,
"Issue 12: analysis rate, rate-independent detector"). With ``ratio`` 1
(every frame) every constant is what it always was, to the bit.

``ratio`` comes from capture (``Frame.skipped``), not from the frames'
timestamps: a camera's jitter or a late frame would otherwise move it.
"""

from __future__ import annotations

MAX_RATIO = 600  # camera frames one analysed frame may stand for (a 60 fps camera at 0.1)


def per_frame(alpha: float, ratio: float) -> float:
    """The rate for one analysed frame that stands for ``ratio`` camera
    frames, of a rate ``alpha`` per camera frame."""
    if ratio == 1:
        return alpha
    return 1.0 - (1.0 - alpha) ** ratio


# A count of camera frames is reached, or still runs, within half a frame:
# every count is a whole number of frames, and at ``ratio`` 1 the tests are
# the integer ones they always were.
HALF = 0.5


def reached(count: float, target: float) -> bool:
    """Whether ``count`` camera frames make ``target``."""
    return count >= target - HALF


def running(remaining: float) -> bool:
    """Whether a hold of ``remaining`` camera frames still runs."""
    return remaining >= HALF
