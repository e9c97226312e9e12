"""The live picture of each camera, JPEG-encoded once for all viewers.

A ``LiveChannel`` keeps the newest raw frame of one camera. It encodes a frame
only when someone asks for it, and at most once: twenty MJPEG viewers and a
WebSocket viewer all get the same bytes (Frigate encodes per connection;
picamera2's MJPEG example encodes once and fans out, as here). With nobody
watching nothing is encoded, and the service may unsubscribe from raw frames
altogether (``wanted``).

Threading: everything runs on the web service's event loop; ``push`` is called
by the bus reader task and viewers await ``next``. The raw pixels are a view
into the zmq frame, kept alive by holding the ``Message`` payload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


# How long after the last viewer left we keep receiving frames: a page reload
# or a snapshot right after must not wait for the subscription to come back.
LINGER_SECONDS = 5.0
BOUNDARY = b"frame"


@dataclass(frozen=True, slots=True)
class Encoded:
    seq: int
    ts: float  # capture time of the frame
    jpeg: bytes
    part: bytes  # the MJPEG multipart chunk, built once for every viewer


# OpenCV and NumPy are imported when the first frame is wanted, not at start:
# a web service nobody watches stays small (a Pi Zero has 512 MB for everything).

def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def to_pixels(fmt: str, width: int, height: int, buf: memoryview | bytes) -> np.ndarray:
    """A BGR (or gray) image over ``buf``; ``ValueError`` names what is wrong."""
    import cv2
    import numpy as np

    arr = np.frombuffer(buf, dtype=np.uint8)
    if fmt == "bgr24":
        shape: tuple[int, ...] = (height, width, 3)
    elif fmt == "gray":
        shape = (height, width)
    elif fmt == "yuv420":
        shape = (height * 3 // 2, width)
    else:
        raise ValueError(f"unsupported live frame format {fmt!r}")
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{fmt} {width}x{height} needs {int(np.prod(shape))} bytes, "
                         f"got {arr.size}")
    arr = arr.reshape(shape)
    if fmt == "yuv420":
        return cv2.cvtColor(arr, cv2.COLOR_YUV2BGR_I420)
    return arr


class LiveChannel:
    """The newest frame of one camera and its (lazy, shared) JPEG."""

    def __init__(self, camera: str, quality: int = 80,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.camera = camera
        self.quality = quality
        self.clock = clock
        self.viewers = 0
        self.frames_in = 0
        self.encoded_count = 0
        self.width = 0
        self.height = 0
        self.last_ts = 0.0
        self.received_at = 0.0  # clock() when the newest frame came
        self._seq = 0
        self._raw: np.ndarray | None = None
        self._encoded: Encoded | None = None
        self._changed = asyncio.Event()
        self._last_demand = -LINGER_SECONDS

    # -- producer side ----------------------------------------------------------
    def push(self, pixels: np.ndarray, ts: float) -> None:
        """A new frame (not encoded here: only when someone asks)."""
        self._seq += 1
        self.frames_in += 1
        self._raw = pixels
        self.last_ts = ts
        self.received_at = self.clock()
        self.height, self.width = pixels.shape[:2]
        self._changed.set()
        self._changed = asyncio.Event()

    def push_jpeg(self, jpeg: bytes, width: int, height: int, ts: float) -> None:
        """A frame that is a JPEG already (the camera's): handed out as it is."""
        self._seq += 1
        self.frames_in += 1
        self._raw = None
        self.last_ts = ts
        self.received_at = self.clock()
        self.width, self.height = width, height
        self._encoded = self._part(jpeg)
        self._changed.set()
        self._changed = asyncio.Event()

    def _part(self, jpeg: bytes) -> Encoded:
        head = (b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                + str(len(jpeg)).encode() + b"\r\n\r\n")
        return Encoded(self._seq, self.last_ts, jpeg, head + jpeg + b"\r\n")

    @property
    def seq(self) -> int:
        """Counts frames pushed; a viewer passes the last one it saw to ``next``."""
        return self._seq

    def fresh(self, max_age: float = 1.0) -> bool:
        return self.frames_in > 0 and self.clock() - self.received_at < max_age

    def wanted(self) -> bool:
        """Whether frames are worth receiving: someone watches or just did."""
        return self.viewers > 0 or self.clock() - self._last_demand < LINGER_SECONDS

    # -- viewer side --------------------------------------------------------------
    def demand(self) -> None:
        """Someone wants a picture: keep (or start) receiving frames a while."""
        self._last_demand = self.clock()

    def latest(self) -> Encoded | None:
        """The newest frame as JPEG (encoded now if nobody has yet)."""
        self.demand()
        if self._encoded is not None and self._encoded.seq == self._seq:
            return self._encoded
        if self._raw is None:
            return None
        self._encoded = self._part(encode_jpeg(self._raw, self.quality))
        self.encoded_count += 1
        return self._encoded

    async def next(self, after: int, timeout: float) -> Encoded | None:
        """The newest frame newer than seq ``after``; waits for one up to
        ``timeout`` seconds, None if none came. A frame older than a second
        (frames were off while nobody watched) is not handed out: a new
        viewer waits for a live one."""
        self.demand()
        if self._seq == 0 or self._seq <= after or not self.fresh():
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                return None
        return self.latest()

    def watch(self) -> _Watch:
        """``with channel.watch():`` counts a viewer for as long as it lasts."""
        return _Watch(self)


class _Watch:
    def __init__(self, channel: LiveChannel) -> None:
        self.channel = channel

    def __enter__(self) -> LiveChannel:
        self.channel.viewers += 1
        self.channel.demand()
        return self.channel

    def __exit__(self, *_: object) -> None:
        self.channel.viewers -= 1
        self.channel.demand()


class LiveHub:
    """One ``LiveChannel`` per camera, in the order the grid shows them."""

    def __init__(self, cameras: list[str], quality: int = 80,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.channels = {name: LiveChannel(name, quality, clock) for name in cameras}

    def get(self, camera: str | None) -> LiveChannel | None:
        if not camera:
            return next(iter(self.channels.values()), None)
        return self.channels.get(camera)

    @property
    def encoded_count(self) -> int:
        return sum(c.encoded_count for c in self.channels.values())

    @property
    def viewers(self) -> int:
        return sum(c.viewers for c in self.channels.values())
