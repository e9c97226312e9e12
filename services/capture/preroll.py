"""The pre-roll of a camera that sends JPEGs, kept as its own JPEGs.

Decoding a frame for h264 and encoding it are most of capture's work, and
nobody needs h264 while nothing is recorded: the recorder only needs the few
seconds before an event. So capture keeps those seconds as the camera sent
them (a JPEG is a tenth of the raw picture, and every one is a starting
point) and encodes them first when someone subscribes to h264 (see
``common.messages.VideoSupply``).

Bounded twice: in time (``seconds`` back from the newest frame) and in bytes
(``max_bytes``; the oldest go first, so large JPEGs shorten the pre-roll
instead of growing memory).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shot:
    """One frame as the camera sent it."""

    jpeg: bytes
    ts: float  # capture time, time.time()
    pts_us: int  # capture time, monotonic microseconds


class JpegRing:
    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._shots: deque[Shot] = deque()
        self.bytes = 0

    def add(self, shot: Shot) -> None:
        self._shots.append(shot)
        self.bytes += len(shot.jpeg)
        horizon = shot.ts - self.seconds
        while len(self._shots) > 1 and (self._shots[0].ts < horizon
                                        or self.bytes > self.max_bytes):
            self.bytes -= len(self._shots.popleft().jpeg)

    def newer_than(self, pts_us: int, limit: int | None = None) -> list[Shot]:
        """The oldest ``limit`` frames (all by default) captured after
        ``pts_us``, oldest first."""
        out: list[Shot] = []
        for shot in reversed(self._shots):  # what is asked for is at the new end
            if shot.pts_us <= pts_us:
                break
            out.append(shot)
        out.reverse()
        return out if limit is None else out[:limit]

    @property
    def newest(self) -> Shot | None:
        return self._shots[-1] if self._shots else None

    @property
    def span(self) -> float:
        """Seconds from the oldest to the newest frame held."""
        return self._shots[-1].ts - self._shots[0].ts if self._shots else 0.0

    def __len__(self) -> int:
        return len(self._shots)
