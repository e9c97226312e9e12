"""Motion algorithms behind one interface.

Every algorithm gets the working image (the luma plane scaled to
``working_height``, uint8, C-contiguous) and returns a foreground mask of the
same size (uint8, 255 = moving) plus a flag that says the whole frame changed
(a light switch, the IR illuminator, the camera knocked), in which case the
caller reports no motion for that frame. Boxes, areas, masks and zones are
worked out by the caller from the mask, the same way for every algorithm, so
they compare on equal terms.

The classic algorithms are kept as they are usually written, for comparison:
``running_average`` (a background that follows every frame),
``static_base`` (a fixed base frame, renewed after ``max_event_time``),
``three_frame`` (differences of three consecutive frames) and OpenCV's
``mog2``. ``default`` is designed from the physics of
the failure cases; see ``DefaultAlgorithm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from services.detect.rate import per_frame, running
from services.detect.relight import JOLT, LightField

if TYPE_CHECKING:
    from common.config import DetectConfig


@dataclass(slots=True)
class AlgoResult:
    fg: np.ndarray  # uint8 mask, 255 = moving
    global_change: bool = False  # whole-frame change: report no motion, re-based
    learning: bool = False  # still building its background: report no motion


class MotionAlgorithm(Protocol):
    name: str

    def apply(self, image: np.ndarray) -> AlgoResult:
        """Foreground of one working image (uint8, h x w)."""
        ...

    def rebase(self) -> None:
        """Forget the background; the next frame becomes the new one."""
        ...


_KERNEL3 = np.ones((3, 3), np.uint8)


def _median(values: np.ndarray) -> float:
    """``np.median`` of a small float32 array, to the bit, for a fraction of
    its cost: np.median's own checks and reductions cost several times the
    selection on the 1200-pixel sample it is used on, on every frame. (A
    sort, numpy's vectorised one, is quicker than a two-element partition
    here, and the order statistics are the same values.)"""
    flat = np.sort(values, axis=None)
    half = flat.size // 2
    if flat.size % 2:
        return float(flat[half])
    return float((flat[half - 1] + flat[half]) / 2)  # float32 arithmetic, as np.median


def _mean(values: np.ndarray) -> float:
    """``float(values.mean())`` of a float32 array, to the bit (the same sum,
    divided in float64 and rounded to float32 as np.mean does), without
    np.mean's own overhead, most of its cost on a sample of 1200 values."""
    return float(np.float32(float(np.add.reduce(values, axis=None)) / values.size))


class RunningAverage:
    """The running-average algorithm (as pyimagesearch teaches it): blur, accumulateWeighted, absdiff, threshold,
    dilate. The background follows everything, moving objects included."""

    name = "running_average"

    def __init__(self, config: DetectConfig, alpha: float = 0.5) -> None:
        self.delta = config.min_pixel_delta_trigger
        self.alpha = alpha
        self.avg: np.ndarray | None = None

    def apply(self, image: np.ndarray) -> AlgoResult:
        blurred = cv2.GaussianBlur(image, (5, 5), 0)
        if self.avg is None:
            self.avg = blurred.astype(np.float32)
            return AlgoResult(np.zeros_like(image), learning=True)
        cv2.accumulateWeighted(blurred, self.avg, self.alpha)
        delta = cv2.absdiff(blurred, cv2.convertScaleAbs(self.avg))
        _, fg = cv2.threshold(delta, self.delta, 255, cv2.THRESH_BINARY)
        return AlgoResult(cv2.dilate(fg, _KERNEL3, iterations=2))

    def rebase(self) -> None:
        self.avg = None


class StaticBase:
    """The static-base algorithm: blur and compare with a fixed base frame; ``max_event_time``
    (handled by the event machine, which calls ``rebase``) picks a new base."""

    name = "static_base"

    def __init__(self, config: DetectConfig) -> None:
        self.delta = config.min_pixel_delta_trigger
        self.base: np.ndarray | None = None

    def apply(self, image: np.ndarray) -> AlgoResult:
        blurred = cv2.GaussianBlur(image, (5, 5), 0)
        if self.base is None:
            self.base = blurred
            return AlgoResult(np.zeros_like(image), learning=True)
        delta = cv2.absdiff(blurred, self.base)
        _, fg = cv2.threshold(delta, self.delta, 255, cv2.THRESH_BINARY)
        return AlgoResult(cv2.dilate(fg, _KERNEL3, iterations=2))

    def rebase(self) -> None:
        self.base = None


class ThreeFrame:
    """The three-frame difference: |N - N-2| AND |N - N-1|, thresholded."""

    name = "three_frame"

    def __init__(self, config: DetectConfig) -> None:
        self.delta = config.min_pixel_delta_trigger
        self.prev: list[np.ndarray] = []

    def apply(self, image: np.ndarray) -> AlgoResult:
        if len(self.prev) < 2:
            self.prev.append(image.copy())
            return AlgoResult(np.zeros_like(image), learning=True)
        both = cv2.bitwise_and(cv2.absdiff(image, self.prev[0]), cv2.absdiff(image, self.prev[1]))
        _, fg = cv2.threshold(both, self.delta, 255, cv2.THRESH_BINARY)
        self.prev = [self.prev[1], image.copy()]
        return AlgoResult(fg)

    def rebase(self) -> None:
        self.prev = []


class Mog2:
    """OpenCV's Gaussian-mixture background subtractor (Zivkovic 2004), with
    Viseron's settings (history 500, variance threshold 15, no shadows)."""

    name = "mog2"

    def __init__(self, config: DetectConfig) -> None:
        self.config = config
        self.rebase()

    def apply(self, image: np.ndarray) -> AlgoResult:
        fg = self.sub.apply(image, learningRate=-1)
        self.frames += 1
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, _KERNEL3)
        return AlgoResult(fg, learning=self.frames < 3)

    def rebase(self) -> None:
        self.sub = cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=15,
                                                      detectShadows=False)
        self.frames = 0


UNREST_ALPHA = 0.03  # per camera frame, as every rate below
LEARNING_ALPHA = 0.3  # while (re)building the background


class DefaultAlgorithm:
    """Background model built for the things that fool camera motion detectors.

    Per pixel it keeps a running mean ``bg`` and a running mean absolute
    deviation ``dev`` of the (brightness-compensated) signed difference. A
    pixel moves when it leaves the band around the background by more than the
    threshold ``max(min_pixel_delta_trigger, k_noise * sigma) + k_dev * dev``:

    - **Brightness**: a light switched on or off, a cloud or the auto exposure
      scale the whole image (gamma-encoded luma of a scaled scene is still a
      scaled image), so the gain ``g`` is the median of ``frame / bg`` over a
      sparse sample of pixels, and the frame is compared with ``g * bg``. A
      median ignores the minority of pixels that really move.
    - **Sensor noise** grows at dusk and under IR: ``sigma`` is the robust
      (MAD) spread of the signed difference over the sample, so the
      threshold rises with the noise instead of firing on it.
    - **Periodic motion** (leaves, water, flags): those pixels have a large
      learned ``dev``, so they need a proportionally larger change. The band is
      also taken over the 3x3 neighbourhood (max/min of the background and
      the largest neighbouring ``dev``), which tolerates a one-pixel sway or
      shake at the working resolution.
    - **Whole-frame changes** that no gain explains (the IR illuminator, the
      camera moved): when moving pixels are spread over most cells of a
      4x4 grid, the background is re-based to this frame and the frame is
      reported as a global change, not motion.
    - **A pool of light** moving over the scene (headlights): while boxes
      of light were seen (``services.detect.relight``), the frame is divided
      by the local light field before it is compared and learnt, so the pool
      is neither motion nor learnt into the background.
    - Moving pixels update the background far slower than still ones, so a
      person standing still is not absorbed in a second, but a parked car is
      within a minute or so (and ``max_event_time`` re-bases anyway).

    Differences are taken in float32 (signed), never in uint8, where they
    would wrap or clip. Persistence and area filtering happen downstream.

    The rates and frame counts are per camera frame; the detector sets
    ``ratio`` (the camera frames this one stands for, ``services.detect.rate``)
    before each frame, so they mean the same time at any analysis rate.
    """

    name = "default"

    def __init__(self, config: DetectConfig, *, k_dev: float = 2.5, k_noise: float = 3.0,
                 alpha: float = 0.04, alpha_fg: float = 0.002, beta: float = 0.03,
                 learn_frames: int = 10, settle_frames: int = 3, spread_cells: int = 12) -> None:
        self.delta = float(config.min_pixel_delta_trigger)
        self.k_dev = k_dev
        self.k_noise = k_noise
        self.alpha = alpha
        self.alpha_fg = alpha_fg
        self.beta = beta
        self.learn_frames = learn_frames
        self.settle_frames = settle_frames
        self.spread_cells = spread_cells
        self.gain = 1.0
        self.sigma = 0.0
        self.bg: np.ndarray | None = None
        self.dev: np.ndarray | None = None
        self._learning: float = 0  # camera frames left to learn or settle
        self._fg = None  # last foreground, excluded from gain estimation
        self._last_sample: np.ndarray | None = None  # last frame's sample, for the noise
        self._unrest: float | None = None
        self.ratio = 1  # camera frames this frame stands for, set by the detector
        self.light = LightField()
        self._relit: np.ndarray | None = None  # last frame's boxes of light (255)
        self._thr = 6.0  # last frame's threshold

    def rebase(self) -> None:
        self.bg = None

    def light_seen(self, boxes: np.ndarray, area: float) -> None:
        """``boxes`` (uint8, 255) covers the boxes of the last ``apply`` that
        were the background under other light, which are not left out of the
        light field's next estimate as something moving would be; those of
        them lit brighter or darker cover ``area`` of the view, and wake the
        field (``LightField.seen``)."""
        self._relit = boxes
        self.light.seen(area)

    def apply(self, image: np.ndarray) -> AlgoResult:
        frame = image.astype(np.float32)
        if self.bg is None or self.bg.shape != frame.shape:
            fresh = self.bg is None and self.dev is not None and self.dev.shape == frame.shape
            self.bg = frame.copy()
            if not fresh:
                self.dev = np.zeros_like(frame)
            self._learning = self.learn_frames if not fresh else self.settle_frames
            self._fg = None
            self._last_sample = None
            self._unrest = None
            self._relit = None
            self.light.reset()
            return AlgoResult(np.zeros(image.shape, np.uint8), learning=True)
        bg, dev = self.bg, self.dev
        assert dev is not None

        # Global gain from a sparse sample of pixels that were still last time.
        # (Contiguous copies: the dozen small operations on them below cost
        # less than on strided views.)
        sample_f = np.ascontiguousarray(frame[2::4, 2::4])
        sample_b = np.ascontiguousarray(bg[2::4, 2::4])
        usable = sample_b > 12.0
        if self._fg is not None:
            usable &= self._fg[2::4, 2::4] == 0
        if np.count_nonzero(usable) > 32:
            gain = _median(sample_f[usable] / sample_b[usable])
        else:
            gain = 1.0
        gain = min(max(gain, 0.05), 20.0)
        self.gain = gain
        relit, self._relit = self._relit, None
        lit = None
        if self.light.hold > 0:
            skip = None  # what moved last frame and was not light
            if self._fg is not None:
                skip = self._fg[2::4, 2::4] != 0
                if relit is not None:
                    skip &= relit[2::4, 2::4] == 0
            lit = self.light.estimate(sample_f, sample_b, gain, skip, 0.5 * self._thr,
                                      (frame.shape[1], frame.shape[0]), self.ratio)
        if lit is not None and self.light.hold <= 0:
            # Light that has stopped moving is part of the scene now.
            bg *= lit[0]
            sample_b = np.ascontiguousarray(bg[2::4, 2::4])
            lit = None
        plain, sample_l = frame, sample_f
        if lit is not None:
            # The scene without the pool of light: compared, learnt. Whether
            # the whole frame changed is still judged on ``plain``.
            frame = frame / lit[0]
            sample_l = sample_f / lit[1]
        diff = sample_l - gain * sample_b
        med = _median(diff)
        # Sensor noise from frame to frame, not from the background: a person
        # filling half the view differs from the background everywhere he
        # stands but from the last frame only along his edges. The 30th
        # percentile of |d| is 0.385 sigma for Gaussian noise (sqrt 2 more for
        # the difference of two frames) and stays put while up to ~60 % of
        # the sample changes (a tree filling the frame, a swaying view).
        # (The background is kept at the current brightness, so ``gain`` is
        # also the change of light since the last frame.)
        last = self._last_sample if self._last_sample is not None else sample_b
        self._last_sample = sample_f
        step = sample_f - gain * last
        spread = np.abs(step - _median(step)).ravel()
        k = len(spread) * 3 // 10
        spread.partition(k)  # in place: a temporary of our own
        noise = float(spread[k]) / (0.385 * 1.414)
        self.light.tick(self.ratio)
        if self._unrest is not None and noise > JOLT * self._unrest:
            self.light.jolt()
        # The scene's own unrest against the background (a swaying view, a
        # tree filling the frame), followed slowly, so a person walking in
        # does not raise it within the second he takes to cross the view.
        rest = np.abs(diff - med).ravel()
        rest.partition(k)
        unrest = float(rest[k]) / 0.385
        ratio = self.ratio
        self._unrest = unrest if self._unrest is None else (
            self._unrest + per_frame(UNREST_ALPHA, ratio) * (unrest - self._unrest))
        self.sigma = max(noise, self._unrest)

        # Contrast scales with the light on the scene (an object 25 levels off
        # the background at mid-grey is 9 levels off at 35 % light), so the
        # fixed floor is for a mid-grey scene and shrinks in the dark; the
        # noise term keeps it above the sensor noise there.
        level = min(1.0, max(0.35, _mean(frame[2::4, 2::4]) / 110.0))
        thr = max(self.delta * level, self.k_noise * self.sigma, 6.0)
        self._thr = thr
        band = cv2.dilate(dev, _KERNEL3)
        band *= self.k_dev
        band += thr
        # The background is kept at the current brightness (``gain``, ``med``),
        # here rather than after the comparison: scaling by a positive gain and
        # adding an offset are monotonic, to the bit, so the 3x3 max and min of
        # the scaled background are the scaled max and min, two passes fewer.
        # (A global change below overwrites the background anyway.)
        if gain != 1.0 or med != 0.0:
            bg *= gain
            bg += med
        hi = cv2.dilate(bg, _KERNEL3)
        lo = cv2.erode(bg, _KERNEL3)
        whole = None
        if lit is not None:  # (before ``hi`` and ``lo`` are overwritten)
            whole = cv2.bitwise_or(cv2.compare(cv2.subtract(plain, hi), band, cv2.CMP_GT),
                                   cv2.compare(cv2.subtract(lo, plain), band, cv2.CMP_GT))
        # Signed comparisons: brighter than the brightest neighbour of the
        # background, or darker than the darkest, by more than the band.
        # (In place, straight to a 0/255 mask: no float temporaries per frame.)
        up = cv2.subtract(frame, hi, dst=hi)
        down = cv2.subtract(lo, frame, dst=lo)
        fg = cv2.bitwise_or(cv2.compare(up, band, cv2.CMP_GT), cv2.compare(down, band, cv2.CMP_GT))

        moving = cv2.countNonZero(fg)
        if whole is None:
            spread = self._spread(fg, moving)
        else:
            spread = self._spread(whole, cv2.countNonZero(whole))
        if spread >= self.spread_cells:
            # Nothing a gain explains and everywhere at once: not an intruder.
            bg[...] = plain
            self._learning = self.settle_frames
            self._fg = None
            self.light.reset()
            return AlgoResult(np.zeros_like(fg), global_change=True)

        # Learn: still pixels fast, moving pixels slowly.
        learning = running(self._learning)
        still = cv2.bitwise_not(fg)
        cv2.accumulateWeighted(cv2.absdiff(frame, bg), dev,
                               per_frame(LEARNING_ALPHA if learning else self.beta, ratio),
                               mask=still)
        cv2.accumulateWeighted(frame, bg,
                               per_frame(LEARNING_ALPHA if learning else self.alpha, ratio),
                               mask=still)
        if moving:  # (with nothing moving the masked update changes nothing)
            cv2.accumulateWeighted(frame, bg, per_frame(self.alpha_fg, ratio), mask=fg)
        if learning:
            self._learning -= ratio
            self._fg = None
            return AlgoResult(np.zeros_like(fg), learning=True)
        self._fg = fg
        return AlgoResult(fg)

    def _spread(self, fg: np.ndarray, moving: int) -> int:
        """Cells of a 4x4 grid with more than ~3 % of their pixels moving."""
        # A cell counts when its mean rounds above 8, and the 16 cell means
        # add up to 16 times the mask's mean: too few moving pixels in all
        # can not make ``spread_cells`` cells, and then the resize is skipped.
        few = 16 * 255 * moving < 8 * self.spread_cells * fg.size
        if self.spread_cells > 0 and few:
            return 0
        cells = cv2.resize(fg, (4, 4), interpolation=cv2.INTER_AREA)
        return int(np.count_nonzero(cells > 8))


ALGORITHMS = {
    "default": DefaultAlgorithm,
    "running_average": RunningAverage,
    "static_base": StaticBase,
    "three_frame": ThreeFrame,
    "mog2": Mog2,
}


def make_algorithm(config: DetectConfig) -> MotionAlgorithm:
    return ALGORITHMS[config.algorithm](config)  # type: ignore[no-any-return]
