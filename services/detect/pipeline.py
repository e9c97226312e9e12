"""One detector: luma frame in, per-frame motion and event changes out.

This is the single code path that the live service, ``pisentry detect
--replay`` and the benchmark all run, so what is measured offline is what
runs on the camera:

    luma -> working image (INTER_AREA: averaging also lowers sensor noise)
         -> algorithm (or the user's function) -> foreground mask
         -> mask / blobs / zones -> area filter -> tracks (persistence, travel,
            loitering, line crossing) -> event machine
         -> optional confirmation on the motion regions only

No sockets here; the caller passes capture timestamps, and how many camera
frames each frame stands for (``frames``: 2 for every 2nd frame of a 30 fps
camera analysed at 15, ``capture.lores_fps``). The constants downstream are
per camera frame and every stage converts them with it
(``services.detect.rate``), so a camera analysed below its rate holds,
learns and confirms over the same time as on every frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from services.detect.algorithms import AlgoResult, MotionAlgorithm, make_algorithm
from services.detect.confirm import Confirmer, make_confirmer
from services.detect.events import EventChange, EventMachine
from services.detect.rate import MAX_RATIO, running
from services.detect.regions import Blobs, Regions, working_size
from services.detect.relight import DEAD_ZONE, light_change, relit
from services.detect.shake import Stabiliser
from services.detect.tamper import CameraHealth, Finding
from services.detect.tracks import Tracker
from services.detect.user import load_user_detector

if TYPE_CHECKING:
    from common.config import DetectConfig

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FrameResult:
    ts: float
    motion: bool  # motion worth an event on this frame (after persistence)
    raw: bool  # enough moving area on this frame alone
    boxes: list[list[float]] = field(default_factory=list)
    area: float = 0.0
    score: float = 0.0
    zones: list[str] = field(default_factory=list)
    global_change: bool = False
    changes: list[EventChange] = field(default_factory=list)
    ms: float = 0.0  # processing time of this frame
    fg: np.ndarray | None = None  # working-size foreground (after the mask)
    health: list[Finding] = field(default_factory=list)  # camera-health notices and all-clears
    blobs: Blobs | None = None  # everything found, moving enough for an event or not
    # An event started on this frame, or a track was confirmed in the open
    # event: the frames of motion just before it were its onset (OnsetBackfill).
    onset: bool = False


class Detector:
    """Stateful per camera. ``process`` must see frames in capture order."""

    def __init__(self, config: DetectConfig, confirmer: Confirmer | None = None) -> None:
        self.config = config
        self.user = load_user_detector(config.detector) if config.detector else None
        self.algorithm: MotionAlgorithm = make_algorithm(config)
        # A user's detector decides for itself; the built-in ones start an
        # event on the first frame with a confirmed track.
        self.tracking = self.user is None
        self.events = EventMachine(config, frames_to_start=1 if self.tracking else None)
        self.confirmer = confirmer if confirmer is not None else make_confirmer(config.confirm)
        # The motion tuner changes these three while running (``tune``).
        self.threshold = config.min_pixel_delta_trigger
        self.min_trigger_area = config.min_trigger_area
        self.frames_to_start = config.frames_to_start
        # Build the regions once now so a bad mask fails at start, not on frame 1.
        self.regions = Regions(config, (160, 120))
        self.stabiliser = Stabiliser()
        self.tracker = Tracker(config, self.regions.zones)
        self.health = CameraHealth(config.camera_health) if config.camera_health.enabled else None
        self.night = False  # the IR light is on (set by the service from the IR controller)
        self._frame_shape: tuple[int, int] | None = None
        self._suppress: float = 0  # camera frames left to report no motion
        self._shaken = False  # the stabiliser moved this frame back
        self._next_confirm = float("-inf")
        self.confirm_seconds = 0.0  # CPU spent in confirmation, for the benchmark
        self.confirm_runs = 0

    def rebase(self, settle_frames: int = 0) -> None:
        """New background from the next frame; report no motion for
        ``settle_frames`` camera frames (the IR illuminator just switched)."""
        self.algorithm.rebase()
        self.stabiliser.reset()
        self.tracker.reset()
        self._suppress = max(self._suppress, settle_frames)

    def tune(self, threshold: int, min_trigger_area: float, frames_to_start: int) -> None:
        """New sensitivity from the next frame on, keeping the background.
        The threshold is the luma change of the algorithms that have one (mog2
        decides with its own variance test; a user detector with its own rule)."""
        self.threshold = threshold
        if hasattr(self.algorithm, "delta"):
            self.algorithm.delta = threshold
        self.min_trigger_area = min_trigger_area
        self.regions.set_min_area(min_trigger_area)
        self.frames_to_start = frames_to_start
        if self.tracking:  # a track must last one frame more (see ``Tracker``)
            self.tracker.min_hits = frames_to_start + 1
        else:
            self.events.frames_to_start = frames_to_start

    def use_profile(self, config: DetectConfig, confirmer: Confirmer | None) -> None:
        """Another profile's settings (``services.detect.profiles``) from the
        next frame: its masks, confirmation and sensitivity. As with ``tune``
        the background, the tracks and an open event carry on: the same scene
        judged by other rules is no motion (an IR switch re-bases itself)."""
        if (config.masks, config.mask_image) != (self.config.masks, self.config.mask_image):
            self.regions = Regions(config, self.regions.size)  # the same zones, other masks
        self.config = config
        self.confirmer = confirmer
        self.events.require_label = config.confirm.require_label and config.confirm.method != "none"
        self.tune(config.min_pixel_delta_trigger, config.min_trigger_area, config.frames_to_start)

    def process(self, luma: np.ndarray, ts: float,
                image: Callable[[], np.ndarray] | None = None, frames: int = 1) -> FrameResult:
        """One frame's luma plane (uint8, h x w). ``image`` returns the best
        picture available for confirmation (BGR or gray), only when needed.
        ``frames``: the camera frames this one stands for (itself and those
        not analysed since the last one)."""
        t0 = time.perf_counter()
        if luma.ndim != 2 or luma.dtype != np.uint8:
            raise ValueError(f"want a uint8 luma plane, got {luma.dtype} {luma.shape}")
        if not 1 <= frames <= MAX_RATIO:
            raise ValueError(f"a frame stands for 1 to {MAX_RATIO} camera frames, not {frames}")
        h, w = luma.shape
        if self._frame_shape != (h, w):
            if self._frame_shape is not None:
                log.info("frame size changed %s -> %s: new background", self._frame_shape, (w, h))
            self._frame_shape = (h, w)
            self.regions = Regions(self.config, working_size(w, h, self.config.working_height))
            self.regions.set_min_area(self.min_trigger_area)
            self.tracker = Tracker(self.config, self.regions.zones)
            self.tracker.min_hits = self.frames_to_start + 1
            self.algorithm.rebase()
        # Every stage's constants are per camera frame (services.detect.rate).
        self.tracker.ratio = self.events.ratio = self.stabiliser.ratio = frames
        if hasattr(self.algorithm, "ratio"):
            self.algorithm.ratio = frames
        size = self.regions.size
        small = luma if (w, h) == size else cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
        seen = small

        if self.user is not None:
            found, boxes = self.user(luma)
            fg = np.zeros((size[1], size[0]), np.uint8)
            for x, y, bw, bh in boxes or ([[0.0, 0.0, 1.0, 1.0]] if found else []):
                cv2.rectangle(fg, (round(x * size[0]), round(y * size[1])),
                              (round((x + bw) * size[0]) - 1, round((y + bh) * size[1]) - 1),
                              255, -1)
            result = AlgoResult(fg)
        else:
            small, (mx, my) = self.stabiliser.align(small)
            self._shaken = bool(mx or my)
            if self._shaken and hasattr(self.algorithm, "light"):
                # A moving view makes what the light field is taken from
                # (frame / background, block by block) move too: no field.
                self.algorithm.light.reset()
            result = self.algorithm.apply(small)
            if result.global_change:
                self.stabiliser.reset()
            elif mx or my:  # no real picture there after the shake was undone
                result.fg[:, :mx] = 0
                result.fg[:, -mx:] = 0
                result.fg[:my] = 0
                result.fg[-my:] = 0

        blobs = self.regions.blobs(result.fg)
        background = getattr(self.algorithm, "bg", None)
        if blobs.boxes and self.user is None and background is not None:
            blobs = self._drop_relit(blobs, small, background)
        suppressed = running(self._suppress)
        quiet = result.global_change or result.learning or suppressed
        if suppressed:
            self._suppress -= frames
        trigger = self.min_trigger_area
        if self.user is not None:
            moving = blobs.pixels > 0
        else:
            moving = not quiet and blobs.pixels > 0 and blobs.area >= trigger
        score = min(1.0, blobs.area / (4 * trigger)) if trigger > 0 and moving else float(moving)
        news = self.tracker.update(ts, blobs.boxes if moving else []) if self.tracking else None
        # No event without a track that lasted and travelled. In an open
        # event what moves counts while such a track was seen a moment ago
        # (``HOLD_SECONDS``: its boxes jump, break or fade for a few frames;
        # a broken track's pieces carry its confirmation, see ``Tracker``),
        # but after that, what still moves (a pool of light, the background's
        # wake) must earn a track of its own to count.
        counts = moving and (news is None or news.confirmed > 0
                             or (self.events.active and news.held))
        motion, changes = self.events.step(ts, counts, blobs.boxes, blobs.area, score,
                                           blobs.zones)
        if news is not None and (news.loitering or news.crossings):
            changes += self.events.add_tracks(ts, news.loitering, news.crossings)
        if self.events.rebase_requested:  # max_event_time: the scene changed for good
            self.events.rebase_requested = False
            self.algorithm.rebase()
        if (self.confirmer is not None and self.events.active and moving and blobs.boxes
                and ts >= self._next_confirm and image is not None):
            self._next_confirm = ts + self.config.confirm.interval_ms / 1000.0
            changes += self._confirm(ts, image(), blobs.boxes)
        health = self.health.frame(seen, ts, self.night, moving) if self.health else []
        onset = any(c.phase == "start" for c in changes) or (
            news is not None and news.fresh > 0 and self.events.active)
        ms = (time.perf_counter() - t0) * 1000.0
        return FrameResult(ts, motion, moving, blobs.boxes if moving else [],
                           blobs.area if moving else 0.0, score, blobs.zones if moving else [],
                           result.global_change, changes, ms, blobs.fg, health, blobs, onset)

    def _drop_relit(self, blobs: Blobs, frame: np.ndarray, background: np.ndarray) -> Blobs:
        """The blobs less those that are the background under moving light."""
        w, h = self.regions.size
        keep, own, pixels = [], [], blobs.pixels
        light, lit_area = None, 0
        for box, n in zip(blobs.boxes, blobs.box_pixels, strict=True):
            px = (round(box[0] * w), round(box[1] * h), max(1, round(box[2] * w)),
                  max(1, round(box[3] * h)))
            if relit(frame, background, px):
                # Its own blobs' pixels only, not what else lies in its
                # rectangle (a speck, a corner of another box's blob).
                pixels -= n
                if light is None:
                    light = np.zeros((h, w), np.uint8)
                light[px[1]:px[1] + px[3], px[0]:px[0] + px[2]] = 255
                if abs(light_change(frame, background, px) - 1.0) > DEAD_ZONE:
                    lit_area += px[2] * px[3]
            else:
                keep.append(box)
                own.append(n)
        if light is not None and not self._shaken and hasattr(self.algorithm, "light_seen"):
            self.algorithm.light_seen(light, lit_area / (w * h))  # the field follows the pool
        if len(keep) == len(blobs.boxes):
            return blobs
        pixels = max(0, pixels) if keep else 0
        return Blobs(keep, pixels / self.regions.active_pixels, pixels,
                     blobs.zones if keep else [], blobs.fg, own)

    @property
    def start_frames(self) -> int:
        """Frames of motion before an event starts (a replay back-fills them)."""
        return self.tracker.min_hits if self.tracking else self.frames_to_start

    def stop(self, ts: float) -> list[EventChange]:
        return self.events.stop(ts)

    def _confirm(self, ts: float, image: np.ndarray, boxes: list[list[float]]
                 ) -> list[EventChange]:
        assert self.confirmer is not None
        t0 = time.process_time()
        try:
            found = self.confirmer.confirm(image, boxes)
        finally:
            self.confirm_seconds += time.process_time() - t0
            self.confirm_runs += 1
        labels: dict[str, float] = {}
        for det in found:
            labels[det.label] = max(det.score, labels.get(det.label, 0.0))
        return self.events.add_labels(ts, labels)
