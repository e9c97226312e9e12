"""The pre-roll of a camera whose h264 is made all the time, kept as h264.

The synthetic camera, a raw (not MJPEG) v4l2 webcam, an RTSP camera decoded
here, the Pi camera's hardware encoder: for these the encoder runs whether
or not anyone subscribes (the Pi's always; ours while a recorder is
configured), so the pre-roll costs only memory when it is kept as the access
units themselves: whole GOPs from a keyframe, bounded in time and in bytes
(``common.gopring.GopRing``, the recorder's own ring). A recorder that
subscribes, a restarted one too (supervisord, kill -9, a config change), gets
them first as ``replay`` packets, as a camera that sends JPEGs gives it its
own (``preroll.JpegRing``): the seconds it was down are in its clip.

Sending order. Every access unit goes into the ring and out through ``due``,
each once and in order. ``join`` (someone new subscribed) takes the send
cursor back to the ring's oldest keyframe: ``due`` then hands out the ring
again, ``limit`` units a call (a subscriber's queue holds ``bus.video_hwm``
messages, and a PUB socket drops whatever does not fit), and the live units
behind it as they come. Units up to ``replay_until`` are the replay.

Buffer ownership: a unit's bytes are the encoder's, owned here and never
written to; the same object goes out again in a replay (zero-copy is safe).
"""

from __future__ import annotations

from common.fmp4 import KeyframeGate
from common.gopring import GopRing, Packet


class H264Ring:
    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.ring = GopRing(seconds, max_bytes)
        self._gate = KeyframeGate()  # the Pi camera's first units may not start a GOP
        self._sent_pts = -1  # units up to this pts have been handed out
        self.replay_until = -1
        self.replays = 0

    def add(self, pkt: Packet) -> None:
        """Keep one access unit (those before the first keyframe are dropped:
        nothing can decode them)."""
        if self._gate.admit(pkt.keyframe):
            self.ring.add(pkt)

    def join(self) -> bool:
        """A new subscriber: the ring goes out again from its oldest keyframe.
        False when nothing is held."""
        newest = self.ring.newest
        if newest is None:
            return False
        self._sent_pts = -1
        self.replay_until = newest.pts
        self.replays += 1
        return True

    def due(self, limit: int) -> list[Packet]:
        """The next units to send, oldest first, at most ``limit``."""
        out = self.ring.after(self._sent_pts, limit)
        if out:
            self._sent_pts = out[-1].pts
        return out

    @property
    def pending(self) -> bool:
        """Whether units are still to be handed out (a replay under way)."""
        newest = self.ring.newest
        return newest is not None and newest.pts > self._sent_pts

    def is_replay(self, pkt: Packet) -> bool:
        return pkt.pts <= self.replay_until

    @property
    def seconds(self) -> float:
        return self.ring.seconds
