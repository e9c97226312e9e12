"""Clip files after the fact: how much of a (maybe torn) fragmented MP4 is
whole, cutting a torn tail off, and reading a clip back to check it. Clips are
written by ``common.fmp4.Fmp4Writer``, the one fMP4 writer (the live view uses
it too).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import av

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
