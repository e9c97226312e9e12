"""The pre-roll: an in-memory ring of complete GOPs.

Two keep one: the recorder (what it has seen, for the clips it cuts) and
capture (a camera whose h264 is made all the time: what a recorder that
subscribes, a restarted one too, gets first; ``services.capture.h264ring``).

Nothing of the pre-roll touches the card: packets live here until an event
asks for them. The ring keeps whole GOPs (each starts with a keyframe) so a
clip cut from it always starts on a keyframe, and it is bounded twice: in
time (enough GOPs that one starts at least ``seconds`` before the newest
packet) and in bytes (``max_bytes``; the oldest GOPs go first, so a bitrate
spike shortens the pre-roll instead of growing memory).

Buffer ownership: packets hold the caller's buffer (a zmq frame's memoryview
in the service) and never write to it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class Packet:
    """One h264 access unit as the recorder keeps it."""

    data: bytes | memoryview
    pts: int  # microseconds, capture clock
    ts: float  # capture time, time.time() seconds
    keyframe: bool
    width: int
    height: int
    fps: float
    replay: bool = False  # capture's pre-roll, sent again when we subscribed


class GopRing:
    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._gops: deque[list[Packet]] = deque()
        self.bytes = 0
        self.trimmed = 0  # GOPs dropped to honour max_bytes early

    def add(self, pkt: Packet) -> None:
        """Append a packet. The caller admits packets through its
        ``common.fmp4.KeyframeGate``, so the first one is a keyframe."""
        if pkt.keyframe or not self._gops:
            self._gops.append([])
        self._gops[-1].append(pkt)
        self.bytes += len(pkt.data)
        horizon = pkt.ts - self.seconds
        # Drop the oldest GOP while the next one still starts early enough.
        while len(self._gops) >= 2 and self._gops[1][0].ts <= horizon:
            self._drop_oldest()
        while self.bytes > self.max_bytes and len(self._gops) >= 2:
            self._drop_oldest()
            self.trimmed += 1

    def _drop_oldest(self) -> None:
        gop = self._gops.popleft()
        self.bytes -= sum(len(p.data) for p in gop)

    def since(self, ts: float) -> list[Packet]:
        """Packets from the newest keyframe at or before ``ts`` (or the oldest
        one held, when the ring does not reach back that far)."""
        chosen = 0
        for i, gop in enumerate(self._gops):
            if gop[0].ts <= ts:
                chosen = i
            else:
                break
        out: list[Packet] = []
        for gop in list(self._gops)[chosen:]:
            out.extend(gop)
        return out

    def after(self, pts: int, limit: int | None = None) -> list[Packet]:
        """The oldest ``limit`` packets (all by default) with a ``pts`` after
        ``pts``, oldest first (all that are held when ``pts`` is older)."""
        out: list[Packet] = []
        for gop in reversed(self._gops):  # what is asked for is at the new end
            for pkt in reversed(gop):
                if pkt.pts <= pts:
                    out.reverse()
                    return out if limit is None else out[:limit]
                out.append(pkt)
        out.reverse()
        return out if limit is None else out[:limit]

    def clear(self) -> None:
        self._gops.clear()
        self.bytes = 0

    @property
    def span(self) -> float:
        """Seconds from the oldest to the newest packet held."""
        if not self._gops:
            return 0.0
        return self._gops[-1][-1].ts - self._gops[0][0].ts

    @property
    def newest(self) -> Packet | None:
        return self._gops[-1][-1] if self._gops else None

    def latest_keyframe(self) -> Packet | None:
        return self._gops[-1][0] if self._gops else None

    def byte_rate(self) -> float:
        """Bytes per second of the stream, from what the ring holds (0 if unknown)."""
        span = self.span
        return self.bytes / span if span > 0.5 else 0.0
