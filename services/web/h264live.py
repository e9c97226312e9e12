"""h264 live view without re-encoding: the camera's access units remuxed into
fragmented MP4 for the browser's Media Source Extensions.

One ``LiveMuxer`` per camera, shared by every viewer, as the JPEG path is:
PyAV's mp4 muxer (copy, never decode) writes an init segment (``ftyp`` +
``moov``) once and then one media segment (``moof`` + ``mdat``) per access
unit (out when the next unit comes: one frame of latency). ``H264Channel`` keeps the init segment and fans the segments out to
viewer queues; a new viewer gets the init segment and then segments from the
next keyframe on, so it never sees a picture it cannot decode (picamera2's
sinks do the same: ignore everything before the first keyframe).

A tenth of MJPEG's bandwidth at the same picture size, and no encoding at all
in the web process. Runs on the event loop (the muxer call is ~0.1 ms).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

log = logging.getLogger(__name__)

US = Fraction(1, 1_000_000)
_BOX = struct.Struct(">I4s")
QUEUE_SEGMENTS = 64  # ~6 s at 10 fps; a viewer further behind starts over


@dataclass(frozen=True, slots=True)
class Segment:
    data: bytes
    keyframe: bool


class _Sink:
    """The file object PyAV writes to: collects bytes and cuts whole boxes."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def boxes(self) -> list[tuple[bytes, bytes]]:
        """Whole (type, box bytes) ready in the buffer, removed from it."""
        out = []
        while len(self.buf) >= 8:
            size, kind = _BOX.unpack_from(self.buf)
            if size < 8 or len(self.buf) < size:
                break
            out.append((bytes(kind), bytes(self.buf[:size])))
            del self.buf[:size]
        return out

    def flush(self) -> None:
        pass


def codec_string(access_unit: bytes) -> str:
    """``avc1.PPCCLL`` from the SPS in an Annex-B access unit (what MSE's
    ``isTypeSupported`` and ``addSourceBuffer`` need)."""
    for start in range(len(access_unit) - 4):
        if access_unit[start:start + 3] == b"\x00\x00\x01" and access_unit[start + 3] & 0x1F == 7:
            sps = access_unit[start + 4:start + 7]
            if len(sps) == 3:
                return "avc1." + sps.hex().upper()
    raise ValueError("no SPS in this access unit")


class LiveMuxer:
    """Annex-B access units in, fMP4 out (init once, then one segment per unit)."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        import av  # here, not at the top: PyAV is loaded once someone watches h264

        self._packet = av.Packet
        self._sink = _Sink()
        self._out = av.open(self._sink, "w", format="mp4", options={
            "movflags": "frag_every_frame+empty_moov+default_base_moof",
            "flush_packets": "1"})
        stream = self._out.add_stream("h264", rate=Fraction(fps or 10).limit_denominator(1001))
        stream.width, stream.height = width, height
        self._stream = stream
        self._frame_us = int(1_000_000 / (fps or 10))
        self._base: int | None = None
        self._last = -1
        self.init: bytes | None = None
        self._pending = b""
        # The muxer writes a unit's fragment when the next unit arrives (it needs
        # its duration), so keyframe flags wait here until their fragment comes out.
        self._flags: list[bool] = []

    def feed(self, access_unit: bytes, pts_us: int, keyframe: bool) -> list[Segment]:
        if self._base is None:
            if not keyframe:
                return []  # the muxer needs SPS/PPS first, and so does every viewer
            self._base = pts_us
        pts = pts_us - self._base
        if pts <= self._last:
            pts = self._last + self._frame_us  # keep time running forward
        packet = self._packet(access_unit)
        packet.pts = packet.dts = pts
        packet.time_base = US
        packet.duration = self._frame_us
        packet.is_keyframe = keyframe
        packet.stream = self._stream
        self._flags.append(keyframe)
        self._out.mux(packet)
        self._last = pts
        return self._collect()

    def _collect(self) -> list[Segment]:
        out = []
        init = b""
        for kind, box in self._sink.boxes():
            if kind in (b"ftyp", b"moov"):
                init += box
            elif kind == b"moof":
                self._pending = box
            elif kind == b"mdat" and self._pending:
                out.append(Segment(self._pending + box, self._flags.pop(0)))
                self._pending = b""
        if init:
            self.init = (self.init or b"") + init
        return out

    def close(self) -> None:
        try:
            self._out.close()
        except Exception as exc:  # noqa: BLE001 - closing a dead muxer must not raise
            log.debug("closing live muxer: %s", exc)


class H264Channel:
    """One camera's h264 live stream and its viewers."""

    def __init__(self, camera: str, clock: Callable[[], float]) -> None:
        self.camera = camera
        self.clock = clock
        self.codec = ""
        self.init: bytes | None = None
        self.generation = 0  # bumps when the stream restarts: viewers must re-init
        self.segments_out = 0
        self._muxer: LiveMuxer | None = None
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
            if not keyframe:
                return
            self._restart(shape, access_unit)
        assert self._muxer is not None
        segments = self._muxer.feed(access_unit, pts_us, keyframe)
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

    def _restart(self, shape: tuple[int, int, float], access_unit: bytes) -> None:
        if self._muxer is not None:
            self._muxer.close()
            for q in self._viewers:  # a new init segment: viewers must start again
                q.put_nowait(None) if not q.full() else None
        self._muxer = LiveMuxer(*shape)
        self._shape = shape
        self.codec = codec_string(access_unit)
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
