"""Fragmented MP4 from h264 access units, remuxed with PyAV (never re-encoded):
the one writer behind record's clip files and the web's h264 live view.

Why fragmented: a plain MP4 keeps its index (moov) at the end, so a power cut
or kill -9 leaves a file nothing can read, and a browser cannot start on a
stream that has no end yet. Here the moov goes first, empty (``empty_moov``),
and samples follow in self-contained fragments (``default_base_moof``):

- to a file (``Fmp4Writer(path, ...)``, record): a fragment at every keyframe
  and at most every ``fragment_seconds``; ``flush_packets=1`` makes PyAV hand
  each fragment to the OS as soon as the muxer writes it (without it a killed
  writer left a torn fragment in the 256 KiB buffer). So the file on disk is
  always a sequence of whole boxes: a playable clip up to the last fragment,
  and ``size()`` is a safe cut for shipping a growing clip in pieces.
- to memory (``Fmp4Writer(None, ...)``, the live view): one fragment per
  access unit; ``init`` holds ftyp + moov once written, ``segments()`` returns
  each finished moof + mdat with its keyframe flag. The muxer writes a unit's
  fragment when the next unit comes (it needs its duration): one frame of
  latency.

The first-keyframe rule lives here too (``KeyframeGate``): a stream, a clip or
a pre-roll starts at a keyframe and, after a gap or a producer restart, waits
for the next one; what comes before cannot be decoded. A writer applies it to
what it is given.

Timestamps are the capture pts (microseconds) rebased to the first packet
written. A pts that goes backwards (the producer restarted) rebases again so
time keeps running forward.

PyAV is imported when the first writer is made: the web process loads it only
once someone watches h264. Threading: a writer belongs to one thread.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

US = Fraction(1, 1_000_000)
_BOX = struct.Struct(">I4s")


class KeyframeGate:
    """Admits packets from a keyframe on; ``restart()`` (a gap, a new
    producer) waits for the next keyframe again."""

    def __init__(self) -> None:
        self.waiting = True
        self.skipped = 0

    def restart(self) -> None:
        self.waiting = True

    def admit(self, keyframe: bool) -> bool:
        if self.waiting and not keyframe:
            self.skipped += 1
            return False
        self.waiting = False
        return True


@dataclass(frozen=True, slots=True)
class Segment:
    """One fragment (moof + mdat) of a memory writer."""

    data: bytes
    keyframe: bool


class _Memory:
    """The file object PyAV writes to in memory: collects bytes, cuts whole boxes."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def flush(self) -> None:
        pass

    def boxes(self) -> list[tuple[bytes, bytes]]:
        """Whole (type, box bytes) in the buffer, removed from it."""
        out = []
        while len(self.buf) >= 8:
            size, kind = _BOX.unpack_from(self.buf)
            if size < 8 or len(self.buf) < size:
                break
            out.append((bytes(kind), bytes(self.buf[:size])))
            del self.buf[:size]
        return out


class Fmp4Writer:
    """h264 access units in, fragmented MP4 out, to ``path`` or (None) to memory."""

    def __init__(self, path: Path | None, width: int, height: int, fps: float,
                 fragment_seconds: float = 1.0) -> None:
        import av

        self._av = av
        self.path = path
        self.width = width
        self.height = height
        self.fps = fps if fps > 0 else 15.0
        self.gate = KeyframeGate()
        self._memory: _Memory | None = None
        if path is None:
            self._memory = _Memory()
            target: Any = self._memory
            options = {"movflags": "frag_every_frame+empty_moov+default_base_moof",
                       "flush_packets": "1"}
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            target = str(path)
            options = {"movflags": "frag_keyframe+empty_moov+default_base_moof",
                       "flush_packets": "1",
                       "frag_duration": str(int(fragment_seconds * 1_000_000))}
        self._out = av.open(target, "w", format="mp4", options=options)
        self._stream = self._out.add_stream("h264",
                                            rate=Fraction(self.fps).limit_denominator(1001))
        self._stream.width = width
        self._stream.height = height
        self._frame_us = int(1_000_000 / self.fps)
        self._base: int | None = None  # pts of the first packet written
        self._last = -1  # last pts written, stream time
        self.frames = 0
        self.first_ts = 0.0
        self.last_ts = 0.0
        self.closed = False
        self.init: bytes | None = None  # memory: ftyp + moov, once written
        self._moof = b""
        # memory: a unit's fragment comes out when the next unit is written,
        # so its keyframe flag waits here until then
        self._flags: list[bool] = []

    def write(self, data: bytes | memoryview, pts_us: int, keyframe: bool, ts: float = 0.0
              ) -> bool:
        """Mux one access unit; False (and nothing written) before the first
        keyframe."""
        if not self.gate.admit(keyframe):
            return False
        if self._base is None:
            self._base = pts_us
            self.first_ts = ts
        pts = pts_us - self._base
        if pts <= self._last:
            self._base -= self._last + self._frame_us - pts
            pts = self._last + self._frame_us
        packet = self._av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = US
        packet.duration = self._frame_us
        packet.is_keyframe = keyframe
        packet.stream = self._stream
        if self._memory is not None:
            self._flags.append(keyframe)
        self._out.mux(packet)
        self._last = pts
        self.frames += 1
        self.last_ts = ts
        return True

    def segments(self) -> list[Segment]:
        """Memory: the fragments finished since the last call (``init`` is set
        once the header is out)."""
        assert self._memory is not None, "segments() is for a writer to memory"
        out = []
        for kind, box in self._memory.boxes():
            if kind in (b"ftyp", b"moov"):
                self.init = (self.init or b"") + box
            elif kind == b"moof":
                self._moof = box
            elif kind == b"mdat" and self._moof:
                out.append(Segment(self._moof + box, self._flags.pop(0)))
                self._moof = b""
        return out

    @property
    def duration(self) -> float:
        """Seconds covered so far (the last frame counts for one frame time)."""
        if self.frames == 0:
            return 0.0
        return (self._last + self._frame_us) / 1_000_000

    def size(self) -> int:
        """File: bytes on disk (always whole fragments)."""
        try:
            return self.path.stat().st_size if self.path is not None else 0
        except OSError:
            return 0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._out.close()
