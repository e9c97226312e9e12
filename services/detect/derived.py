"""Weather, insects, headlights and camera shake laid over real frames.

The shared footage has none of these, so the benchmark and the tests derive
them: each case is a random process drawn from a seed, so the same seed gives
the same pixels and several seeds give several different scenes, and nothing
is tuned to one clip. Sizes and speeds are in pixels of the detector's
working image (120 rows high) and scaled to the frame they are drawn on, and
they follow the physics of what they imitate:

- ``shake_sway``: the pole sways in the wind, 1-3 px, 0.3-2 Hz, with a
  small rotation and a little jitter, all the time;
- ``shake_burst``: a passing truck: bursts of 0.5-2 s of damped shaking up to
  3 px at 5-12 Hz;
- ``shake_vibrate``: a vibrating mount: random sub-pixel to 1.5 px offsets
  every frame and a small rotation;
- ``rain``: hundreds of short bright streaks a frame, new every frame (a drop
  crosses the view faster than the shutter), and a few blurred drops close to
  the lens;
- ``snow``: far flakes, tiny and slow, and near flakes, large, blurred and
  fast (a flake at the lens crosses the view in a few frames);
- ``insects``: small bright blobs lit by the IR LEDs, close to the lens, on
  erratic paths (direction and speed change every frame);
- ``headlights``: a night scene (dark, noisy) where a soft pool of light
  sweeps across the view every few seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

DERIVED_CASES = ("shake_sway", "shake_burst", "shake_vibrate", "rain", "snow", "insects",
                 "headlights")
WORKING_ROWS = 120.0
SHAKE_MARGIN = 5.0  # working px: more than any shake below moves plus a turn's corner

Case = Callable[[np.ndarray, int], np.ndarray]


def _warp(luma: np.ndarray, dx: float, dy: float, degrees: float) -> np.ndarray:
    """The frame moved and turned, cropped by a margin on every side so no
    edge is smeared into the picture (a real camera sees beyond its frame);
    every frame of a shake case is cropped the same, moved or not."""
    h, w = luma.shape
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    m[0, 2] += dx
    m[1, 2] += dy
    if dx or dy or degrees:
        luma = cv2.warpAffine(luma, m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    c = math.ceil(SHAKE_MARGIN * h / WORKING_ROWS)
    return luma[c:h - c, c:w - c]


class ShakeSway:
    def __init__(self, rng: np.random.Generator, fps: float) -> None:
        self.rng, self.fps = rng, fps
        self.amp = rng.uniform(1.0, 3.0, 2)
        self.freq = rng.uniform(0.3, 2.0, 2)
        self.phase = rng.uniform(0, 2 * math.pi, 2)
        self.rot = rng.uniform(0.1, 0.4)

    def __call__(self, luma: np.ndarray, i: int) -> np.ndarray:
        s = luma.shape[0] / WORKING_ROWS
        t = i / self.fps
        wave = np.sin(2 * math.pi * self.freq * t + self.phase)
        dx, dy = (self.amp * wave + self.rng.normal(0, 0.2, 2)) * s
        return _warp(luma, float(dx), float(dy), self.rot * float(wave[0]))


class ShakeBurst:
    def __init__(self, rng: np.random.Generator, fps: float) -> None:
        self.rng, self.fps = rng, fps
        self.bursts: list[tuple[float, float, float, float, float]] = []
        t = rng.uniform(0.5, 3.0)
        while t < 3600:
            self.bursts.append((t, rng.uniform(0.5, 2.0), rng.uniform(1.0, 3.0),
                                rng.uniform(5.0, 12.0), rng.uniform(0, 2 * math.pi)))
            t += rng.uniform(3.0, 8.0)

    def __call__(self, luma: np.ndarray, i: int) -> np.ndarray:
        t = i / self.fps
        for start, length, amp, freq, phase in self.bursts:
            if start <= t < start + length:
                s = luma.shape[0] / WORKING_ROWS
                decay = amp * math.exp(-2.0 * (t - start) / length)
                dx = decay * math.sin(2 * math.pi * freq * (t - start) + phase) * s
                dy = decay * math.cos(2 * math.pi * freq * 1.3 * (t - start) + phase) * s * 0.6
                return _warp(luma, dx, dy, 0.2 * decay / 3.0 * math.sin(phase + t))
            if start > t:
                break
        return _warp(luma, 0.0, 0.0, 0.0)


class ShakeVibrate:
    def __init__(self, rng: np.random.Generator, fps: float) -> None:
        self.rng = rng
        self.amp = rng.uniform(0.5, 1.5)

    def __call__(self, luma: np.ndarray, i: int) -> np.ndarray:
        s = luma.shape[0] / WORKING_ROWS
        dx, dy = self.rng.uniform(-self.amp, self.amp, 2) * s
        return _warp(luma, float(dx), float(dy), float(self.rng.uniform(-0.2, 0.2)))


def _add_light(luma: np.ndarray, layer: np.ndarray) -> np.ndarray:
    return np.clip(luma.astype(np.float32) + layer, 0, 255).astype(np.uint8)


class Rain:
    def __init__(self, rng: np.random.Generator, fps: float) -> None:
        self.rng = rng
        self.density = rng.uniform(0.5, 1.5)  # streaks per 100 working pixels... scaled below
        self.angle = rng.uniform(-15, 15)

    def __call__(self, luma: np.ndarray, i: int) -> np.ndarray:
        h, w = luma.shape
        s = h / WORKING_ROWS
        rng = self.rng
        layer = np.zeros((h, w), np.float32)
        n = int(self.density * 250)
        xs = rng.uniform(0, w, n)
        ys = rng.uniform(0, h, n)
        lengths = rng.uniform(3, 10, n) * s
        levels = rng.uniform(20, 60, n)
        a = math.radians(self.angle + rng.normal(0, 2))
        ddx, ddy = math.sin(a), math.cos(a)
        for x, y, length, level in zip(xs, ys, lengths, levels):
            cv2.line(layer, (int(x), int(y)), (int(x + ddx * length), int(y + ddy * length)),
                     float(level), 1)
        near = np.zeros((h, w), np.float32)
        for _ in range(rng.integers(0, 4)):  # drops close to the lens: wide, faint, blurred
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            length = rng.uniform(20, 50) * s
            cv2.line(near, (int(x), int(y)), (int(x + ddx * length), int(y + ddy * length)),
                     float(rng.uniform(10, 25)), max(1, int(3 * s)))
        layer += cv2.GaussianBlur(near, (0, 0), 1.5 * s)
        return _add_light(luma, layer)


class Snow:
    def __init__(self, rng: np.random.Generator, fps: float) -> None:
        self.rng = rng
        self.far = 0  # flakes are made on the first frame, when the size is known
        self.flakes: np.ndarray | None = None  # x, y, vx, vy, radius, level, near

    def _spawn(self, n: int, w: int, h: int, s: float, near: bool, top: bool) -> np.ndarray:
        rng = self.rng
        out = np.zeros((n, 7), np.float32)
        out[:, 0] = rng.uniform(0, w, n)
        out[:, 1] = -rng.uniform(0, 20 * s, n) if top else rng.uniform(0, h, n)
        if near:
            out[:, 2] = rng.normal(0, 4, n) * s
            out[:, 3] = rng.uniform(15, 40, n) * s
            out[:, 4] = rng.uniform(2, 5, n) * s
            out[:, 5] = rng.uniform(40, 90, n)
        else:
            out[:, 2] = rng.normal(0, 0.5, n) * s
            out[:, 3] = rng.uniform(0.5, 2.0, n) * s
            out[:, 4] = rng.uniform(0.5, 1.3, n) * s
            out[:, 5] = rng.uniform(40, 90, n)
        out[:, 6] = near
        return out

    def __call__(self, luma: np.ndarray, i: int) -> np.ndarray:
        h, w = luma.shape
        s = h / WORKING_ROWS
        rng = self.rng
        if self.flakes is None:
            self.flakes = np.vstack([self._spawn(400, w, h, s, False, False),
                                     self._spawn(int(rng.integers(1, 5)), w, h, s, True, False)])
        f = self.flakes
        f[:, 0] += f[:, 2] + rng.normal(0, 0.3, len(f)) * s
        f[:, 1] += f[:, 3]
        gone = f[:, 1] > h + 10 * s
        if gone.any():
            near_gone = int(np.count_nonzero(gone & (f[:, 6] > 0)))
            far_gone = int(np.count_nonzero(gone & (f[:, 6] == 0)))
            f = np.vstack([f[~gone], self._spawn(far_gone, w, h, s, False, True),
                           self._spawn(near_gone, w, h, s, True, True)])
            self.flakes = f
        sharp = np.zeros((h, w), np.float32)
        blurred = np.zeros((h, w), np.float32)
        for x, y, _vx, vy, r, level, near in f:
            if near:
                # Motion blur: a near flake is a streak as long as its fall.
                cv2.line(blurred, (int(x), int(y - vy)), (int(x), int(y)), float(level) / 2,
                         max(1, int(r)))
            else:
                cv2.circle(sharp, (int(x), int(y)), max(0, int(r)), float(level), -1)
        layer = cv2.GaussianBlur(sharp, (0, 0), 0.5 * s) + cv2.GaussianBlur(blurred, (0, 0),
                                                                            2.0 * s)
        return _add_light(luma, layer)


class Insects:
    def __init__(self, rng: np.random.Generator, fps: float) -> None:
        self.rng = rng
        self.bugs: list[list[float]] = []  # x, y, vx, vy, radius, level, frames left

    def __call__(self, luma: np.ndarray, i: int) -> np.ndarray:
        h, w = luma.shape
        s = h / WORKING_ROWS
        rng = self.rng
        while len(self.bugs) < 3 and rng.random() < 0.3:
            self.bugs.append([rng.uniform(0, w), rng.uniform(0, h), 0.0, 0.0,
                              rng.uniform(1.5, 4.0) * s, rng.uniform(60, 140),
                              float(rng.integers(20, 150))])
        layer = np.zeros((h, w), np.float32)
        keep = []
        for bug in self.bugs:
            # Erratic: a new heading and speed every frame, a few body lengths.
            heading = rng.uniform(0, 2 * math.pi)
            speed = rng.uniform(2.0, 6.0) * bug[4]
            bug[2] = 0.3 * bug[2] + speed * math.cos(heading)
            bug[3] = 0.3 * bug[3] + speed * math.sin(heading)
            bug[0] = min(max(bug[0] + bug[2], 0), w - 1)
            bug[1] = min(max(bug[1] + bug[3], 0), h - 1)
            bug[6] -= 1
            cv2.circle(layer, (int(bug[0]), int(bug[1])), max(1, int(bug[4])), bug[5], -1)
            if bug[6] > 0:
                keep.append(bug)
        self.bugs = keep
        return _add_light(luma, cv2.GaussianBlur(layer, (0, 0), 0.8 * s))


class Headlights:
    def __init__(self, rng: np.random.Generator, fps: float) -> None:
        self.rng, self.fps = rng, fps
        self.night = rng.uniform(0.25, 0.4)
        self.sweeps: list[tuple[float, float, float, float, float, float]] = []
        t = rng.uniform(0.5, 2.0)
        while t < 3600:
            # start, duration, height of the pool (0..1), radius (of width), gain, direction
            self.sweeps.append((t, rng.uniform(1.0, 2.5), rng.uniform(0.2, 0.8),
                                rng.uniform(0.25, 0.45), rng.uniform(1.6, 2.6),
                                float(rng.choice([-1.0, 1.0]))))
            t += rng.uniform(3.0, 6.0)
        self.field: np.ndarray | None = None

    def __call__(self, luma: np.ndarray, i: int) -> np.ndarray:
        h, w = luma.shape
        t = i / self.fps
        img = luma.astype(np.float32) * self.night
        img += self.rng.normal(0, 2.5, img.shape).astype(np.float32)
        for start, length, cy, radius, gain, direction in self.sweeps:
            if start <= t < start + length:
                u = (t - start) / length
                cx = (-0.3 + 1.6 * u) if direction > 0 else (1.3 - 1.6 * u)
                yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
                r2 = ((xx / w - cx) ** 2 + ((yy / h - cy) * h / w) ** 2) / radius ** 2
                img *= 1.0 + (gain - 1.0) * np.exp(-2.0 * r2)
                break
            if start > t:
                break
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)


_CASES: dict[str, Callable[[np.random.Generator, float], Case]] = {
    "shake_sway": ShakeSway, "shake_burst": ShakeBurst, "shake_vibrate": ShakeVibrate,
    "rain": Rain, "snow": Snow, "insects": Insects, "headlights": Headlights,
}


def make_case(case: str, seed: int, fps: float) -> Case:
    """The frame transform of ``case`` drawn from ``seed``: call it with each
    luma frame and its index, in order."""
    try:
        return _CASES[case](np.random.default_rng(seed), fps)
    except KeyError:
        raise ValueError(f"unknown derived case {case!r}; known: {', '.join(_CASES)}") from None


# Tampering, from a given frame on (``start``): what the camera-health checks
# must notice. "stop" (no frames at all) is played by the caller.
TAMPER_CASES = ("cover", "blind", "blur", "shift", "freeze")


class Tamper:
    def __init__(self, case: str, rng: np.random.Generator, start: int, end: int) -> None:
        self.case, self.rng, self.start, self.end = case, rng, start, end
        self.frozen: np.ndarray | None = None
        self.level = rng.uniform(10, 40)
        self.angle = rng.uniform(-8, 8)
        self.move = rng.uniform(0.15, 0.3) * float(rng.choice([-1.0, 1.0]))

    def __call__(self, luma: np.ndarray, i: int) -> np.ndarray:
        if not self.start <= i < self.end:
            return luma
        h, w = luma.shape
        s = h / WORKING_ROWS
        if self.case == "cover":  # a hand or a bag over the lens: dark, a little light bleeding
            xx = np.arange(w, dtype=np.float32)[None, :]
            img = self.level + 6.0 * (xx / w) + self.rng.normal(0, 1.5, (h, w))
            return np.clip(img, 0, 255).astype(np.uint8)
        if self.case == "blind":  # a torch into the lens
            return np.clip(luma.astype(np.float32) * 4.0 + 120, 0, 255).astype(np.uint8)
        if self.case == "blur":  # fog or grease on the lens
            return cv2.GaussianBlur(luma, (0, 0), 3.0 * s)
        if self.case == "shift":  # knocked: turned by a quarter of the view and tilted
            m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), self.angle, 1.0)
            m[0, 2] += self.move * w
            return cv2.warpAffine(luma, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        if self.case == "freeze":
            if self.frozen is None:
                self.frozen = luma.copy()
            return self.frozen
        raise ValueError(f"unknown tamper case {self.case!r}")
