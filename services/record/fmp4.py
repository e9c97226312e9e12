"""Fragmented MP4 clips from h264 access units, remuxed with PyAV (never re-encoded).

Why fragmented: a plain MP4 keeps its index (moov) at the end, so a power cut
or kill -9 leaves a file nothing can read. Here the moov goes first, empty
(``empty_moov``), and samples follow in self-contained fragments
(``default_base_moof``) of at most ``fragment_seconds`` (``frag_duration``) and
at every keyframe (``frag_keyframe``). ``flush_packets=1`` makes PyAV's I/O
layer hand each fragment to the OS as soon as the muxer writes it; measured
here, without it a killed writer leaves a torn fragment in the 256 KiB buffer.
So at any moment the file on disk is a sequence of whole boxes: a playable
clip up to the last fragment, and ``size()`` is a safe cut for shipping a
growing clip in pieces.

Timestamps are the capture pts (microseconds) rebased to the clip's first
packet. A pts that goes backwards (the producer restarted) rebases the clip so
time keeps running forward.

Threading: a ``ClipWriter`` belongs to one thread.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from services.record.ring import Packet

log = logging.getLogger(__name__)

US = Fraction(1, 1_000_000)


class ClipWriter:
    def __init__(self, path: Path, width: int, height: int, fps: float,
                 fragment_seconds: float = 1.0) -> None:
        self.path = path
        self.width = width
        self.height = height
        self.fps = fps if fps > 0 else 15.0
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof",
                   "flush_packets": "1",
                   "frag_duration": str(int(fragment_seconds * 1_000_000))}
        self._out = av.open(str(path), "w", format="mp4", options=options)
        self._stream = self._out.add_stream("h264", rate=Fraction(self.fps).limit_denominator(1001))
        self._stream.width = width
        self._stream.height = height
        self._frame_us = int(1_000_000 / self.fps)
        self._base: int | None = None  # pts of the clip's first packet
        self._last = -1  # last pts written, clip time
        self.frames = 0
        self.first_ts = 0.0
        self.last_ts = 0.0
        self.closed = False

    def write(self, pkt: Packet) -> None:
        if self._base is None:
            self._base = pkt.pts
            self.first_ts = pkt.ts
        pts = pkt.pts - self._base
        if pts <= self._last:
            # Producer restarted (or reordered): keep time running forward.
            self._base -= self._last + self._frame_us - pts
            pts = self._last + self._frame_us
        av_pkt = av.Packet(pkt.data)
        av_pkt.pts = av_pkt.dts = pts
        av_pkt.time_base = US
        av_pkt.duration = self._frame_us
        av_pkt.is_keyframe = pkt.keyframe
        av_pkt.stream = self._stream
        self._out.mux(av_pkt)
        self._last = pts
        self.frames += 1
        self.last_ts = pkt.ts

    @property
    def duration(self) -> float:
        """Seconds covered so far (the last frame counts for one frame time)."""
        if self.frames == 0:
            return 0.0
        return (self._last + self._frame_us) / 1_000_000

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._out.close()


_BOX = struct.Struct(">I4s")


def complete_prefix(path: Path) -> int:
    """Bytes of ``path`` that form whole top-level boxes ending with a complete
    fragment (moof + its mdat), or the moov when no fragment is complete; 0 when
    not even the header is whole."""
    good = 0
    pending_moof = False
    size = path.stat().st_size
    with open(path, "rb") as fh:
        pos = 0
        while pos + 8 <= size:
            fh.seek(pos)
            length, kind = _BOX.unpack(fh.read(8))
            if length == 1:
                raw = fh.read(8)
                if len(raw) < 8:
                    break
                length = struct.unpack(">Q", raw)[0]
            if length < 8 or pos + length > size:
                break
            pos += length
            if kind == b"moof":
                pending_moof = True
            elif kind == b"mdat":
                pending_moof = False
                good = pos
            elif kind in (b"moov", b"mfra") and not pending_moof:
                good = pos
    return good


def truncate_to_complete(path: Path) -> tuple[int, int]:
    """Cut a torn tail off ``path`` (an interrupted clip). Returns (old, new) size."""
    old = path.stat().st_size
    new = complete_prefix(path)
    if new < old:
        # O_NOFOLLOW: a symlink swapped in for the clip is refused, not truncated.
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        try:
            os.ftruncate(fd, new)
            os.fsync(fd)
        finally:
            os.close(fd)
    return old, new


@dataclass(frozen=True)
class ClipInfo:
    frames: int
    first: float  # seconds, clip time of the first decoded frame
    last: float  # seconds, clip time of the last decoded frame
    duration: float  # last - first + one frame
    width: int
    height: int
    first_keyframe: bool
    error: str = ""  # set when decoding stopped early (torn or corrupt data)


def probe(path: Path, decode: bool = True) -> ClipInfo:
    """Read a clip packet by packet, tolerating a torn tail; counts frames by
    decoding (``decode=False``: by packets), since fragmented files report none."""
    frames = 0
    first = last = -1.0
    step = 0.0
    width = height = 0
    first_key = False
    error = ""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate
            step = float(1 / rate) if rate else 0.0
            try:
                for pkt in container.demux(stream):
                    if pkt.size == 0:
                        continue
                    if frames == 0 and first < 0:
                        first_key = bool(pkt.is_keyframe)
                    if decode:
                        for frame in pkt.decode():
                            t = float(frame.time or 0.0)
                            first = t if first < 0 else first
                            last = t
                            frames += 1
                    else:
                        t = float(pkt.pts * pkt.time_base) if pkt.pts is not None else 0.0
                        first = t if first < 0 else first
                        last = t
                        frames += 1
                if decode:
                    for frame in stream.codec_context.decode(None):
                        last = float(frame.time or last)
                        frames += 1
            except (av.error.InvalidDataError, av.error.EOFError) as exc:
                error = str(exc)
    except (av.error.FFmpegError, IndexError) as exc:
        return ClipInfo(0, 0.0, 0.0, 0.0, 0, 0, False, f"unreadable: {exc}")
    if frames == 0:
        return ClipInfo(0, 0.0, 0.0, 0.0, width, height, first_key, error or "no frames")
    return ClipInfo(frames, first, last, last - first + step, width, height, first_key, error)
