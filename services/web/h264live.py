"""h264 live view without re-encoding: the camera's access units remuxed into
fragmented MP4 for the browser's Media Source Extensions.

One fMP4 writer to memory (``common.fmp4.Fmp4Writer``, the one record's clips
use) per camera, shared by every viewer, as the JPEG path is: it writes an
init segment (``ftyp`` + ``moov``) once and then one media segment (``moof``
+ ``mdat``) per access unit (out when the next unit comes: one frame of
latency). ``H264Channel`` keeps the init segment and fans the segments out to
viewer queues; a new viewer gets the init segment and then segments from the
next keyframe on, so it never sees a picture it cannot decode (picamera2's
sinks do the same: ignore everything before the first keyframe).

A tenth of MJPEG's bandwidth at the same picture size, and no encoding at all
in the web process. Runs on the event loop (the muxer call is ~0.1 ms).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from common.fmp4 import Fmp4Writer, Segment

log = logging.getLogger(__name__)

QUEUE_SEGMENTS = 64  # ~6 s at 10 fps; a viewer further behind starts over


def codec_string(access_unit: bytes) -> str:
    """``avc1.PPCCLL`` from the SPS in an Annex-B access unit (what MSE's
    ``isTypeSupported`` and ``addSourceBuffer`` need)."""
    for start in range(len(access_unit) - 4):
        if access_unit[start:start + 3] == b"\x00\x00\x01" and access_unit[start + 3] & 0x1F == 7:
            sps = access_unit[start + 4:start + 7]
            if len(sps) == 3:
                return "avc1." + sps.hex().upper()
    raise ValueError("no SPS in this access unit")


class H264Channel:
    """One camera's h264 live stream and its viewers."""

    def __init__(self, camera: str, clock: Callable[[], float]) -> None:
        self.camera = camera
        self.clock = clock
        self.codec = ""
        self.init: bytes | None = None
        self.generation = 0  # bumps when the stream restarts: viewers must re-init
        self.segments_out = 0
        self._muxer: Fmp4Writer | None = None
        self._shape: tuple[int, int, float] | None = None
        self._last_pts = -1
        self._viewers: set[asyncio.Queue[Segment | None]] = set()
        self._waiting: set[asyncio.Queue[Segment | None]] = set()  # until a keyframe
        self._ready = asyncio.Event()

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def wanted(self) -> bool:
        return bool(self._viewers)

    def push(self, access_unit: bytes, pts_us: int, keyframe: bool, width: int, height: int,
             fps: float) -> None:
        shape = (width, height, fps)
        # A jump either way: the producer restarted, or frames were off while
        # nobody watched. Start a fresh timeline rather than leave a hole in it.
        restarted = self._last_pts >= 0 and abs(pts_us - self._last_pts) > 2_000_000
        self._last_pts = pts_us
        if self._muxer is None or shape != self._shape or restarted:
            self._restart(shape)
        assert self._muxer is not None
        if not self._muxer.write(access_unit, pts_us, keyframe):
            return  # nothing before the stream's first keyframe (common.fmp4.KeyframeGate)
        if not self.codec:
            self.codec = codec_string(access_unit)  # a keyframe: SPS in band
        segments = self._muxer.segments()
        if self.init is None and self._muxer.init:
            self.init = self._muxer.init
            self._ready.set()
        for seg in segments:
            if seg.keyframe and self._waiting:
                self._waiting.clear()  # they start here
            for q in self._viewers:
                if q in self._waiting:
                    continue
                if q.full():  # too far behind: start over at the next keyframe
                    while not q.empty():
                        q.get_nowait()
                    self._waiting.add(q)
                    continue
                q.put_nowait(seg)
                self.segments_out += 1

    def _restart(self, shape: tuple[int, int, float]) -> None:
        if self._muxer is not None:
            try:
                self._muxer.close()
            except Exception as exc:  # noqa: BLE001 - closing a dead muxer must not raise
                log.debug("closing live muxer: %s", exc)
            for q in self._viewers:  # a new init segment: viewers must start again
                q.put_nowait(None) if not q.full() else None
        self._muxer = Fmp4Writer(None, *shape)
        self._shape = shape
        self.codec = ""
        self.init = None
        self._ready.clear()  # cleared, not replaced: waiters hold this one
        self.generation += 1

    async def ready(self, timeout: float) -> bool:
        """Wait until the init segment exists (the first keyframe came)."""
        if self.init is not None:
            return True
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return self.init is not None

    def join(self) -> asyncio.Queue[Segment | None]:
        q: asyncio.Queue[Segment | None] = asyncio.Queue(QUEUE_SEGMENTS)
        self._viewers.add(q)
        self._waiting.add(q)
        return q

    def leave(self, q: asyncio.Queue[Segment | None]) -> None:
        self._viewers.discard(q)
        self._waiting.discard(q)
