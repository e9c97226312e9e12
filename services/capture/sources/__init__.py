"""Frame sources behind one interface, chosen by ``capture.source``.

A source opens, then hands out frames with ``read`` until it fails or is
closed. ``read`` blocks until the next frame is due (sources that generate
frames pace themselves; cameras are paced by the device) and raises
``SourceError`` when the source is gone, so the capture service can back off
and reopen it. Frames are BGR ``uint8`` arrays owned by the caller.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from common.config import CaptureConfig


class SourceError(RuntimeError):
    """The source cannot deliver frames now (gone, unreachable, ended)."""


@dataclass(slots=True)
class Captured:
    bgr: np.ndarray | None  # main stream picture, owned by the receiver; None: see jpeg
    ts: float  # wall-clock capture time, time.time()
    pts_us: int  # monotonic capture time, microseconds
    lores_yuv: np.ndarray | None = None  # set by sources that make their own (picamera2)
    jpeg: bytes | None = None  # the camera's own JPEG of this frame, when it sends JPEGs

    def picture(self) -> np.ndarray:
        """The BGR picture, decoded from the JPEG on first use."""
        if self.bgr is None:
            from services.capture.jpeg import decode_bgr
            assert self.jpeg is not None, "a frame carries pixels or a JPEG"
            self.bgr = decode_bgr(self.jpeg)
        return self.bgr


class Source(ABC):
    #: True when the source delivers its own h264 (picamera2's hardware encoder)
    encodes_h264 = False
    #: The camera's own (width, height) and frame rate, as far as ``open``
    #: learnt them (None: known from the frames only)
    size: tuple[int, int] | None = None
    fps: float | None = None

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> Captured: ...

    def close(self) -> None:
        pass


def now_pair() -> tuple[float, int]:
    return time.time(), time.monotonic_ns() // 1000


class Pacer:
    """Sleeps until the next frame of a steady rate is due; skips ahead
    rather than bursting when the caller fell behind."""

    def __init__(self, fps: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.period = 1.0 / fps
        self._next = time.monotonic()
        self._sleep = sleep

    def wait(self) -> None:
        now = time.monotonic()
        if self._next > now:
            self._sleep(self._next - now)
            self._next += self.period
        else:
            self._next = now + self.period


class RateLimit:
    """Lets through at most ``fps`` frames a second of a faster camera (a
    30 fps camera at ``fps = 15``: every other frame), evenly; a frame up to
    a fifth of a period early still counts as on time (camera jitter)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._next = float("-inf")

    def take(self, ts: float) -> bool:
        if ts < self._next - 0.2 * self.period:
            return False
        late = ts - self._next >= self.period
        self._next = ts + self.period if late else self._next + self.period
        return True


# What the synthetic camera makes when capture.width/height/fps are unset.
SYNTHETIC_SIZE = (1280, 720)
SYNTHETIC_FPS = 15.0


def make_source(config: CaptureConfig) -> Source:
    if config.source == "synthetic":
        from services.capture.sources.synthetic import SyntheticSource
        return SyntheticSource(config)
    if config.source == "file":
        from services.capture.sources.file import FileSource
        return FileSource(config)
    if config.source == "v4l2":
        from services.capture.sources.v4l2 import V4l2Source
        return V4l2Source(config)
    if config.source == "url":
        from services.capture.sources.url import UrlSource
        return UrlSource(config)
    from services.capture.sources.picamera2 import Picamera2Source
    return Picamera2Source(config)
