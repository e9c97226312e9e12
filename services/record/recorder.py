"""The recording logic: which packets go into which clip, and when clips start,
split and end. No sockets: the service feeds it packets and motion headers and
publishes the notes it leaves in ``outbox``.

Clips (at most one per slot at a time):

* ``event`` slot. ``event_mode = "all"``: a clip starts at the newest keyframe
  at or before ``motion start - rec_sec_before`` (from the pre-roll ring) and
  ends at the first packet ``rec_sec_after`` after the last running event's
  end. An event that starts during the post-roll extends the clip (and is
  linked to it in the catalogue). ``"edge"``: short clips from
  ``edge - rec_sec_before`` to ``edge + rec_sec_after`` around each start and
  end of detection; overlapping edges share a clip.
* ``continuous`` slot: always on when ``continuous`` is set; cut at the first
  keyframe at or after each quarter hour (``continuous_minutes``).

Every clip is split at a keyframe once longer than ``max_clip_seconds`` and
when the picture size changes, so every clip starts on a keyframe. All times
are capture times from the packet and motion headers (``ts``), so detect's
latency does not shift clips; ``clock`` only drives progress notes and event
time-outs.

After a gap in the stream (``gap != 0``) nothing is used until the next
keyframe: a clip never holds frames whose references are lost.

Video on demand. When capture keeps the pre-roll itself (``VideoSupply.preroll``
> 0, told with ``supply``: a camera that sends JPEGs, kept as its JPEGs and
h264 encoded only while someone subscribes; any other, kept as h264), the
recorder asks for video
(``wants_video``) only while it has a clip to write (always in continuous
mode). A new subscription gets capture's pre-roll first (``replay``
packets): an event clip waits until the video reaches the event's start,
then starts from the ring as it would have.

An event heard of late. A recorder that was down (killed, starved) when an
event started hears of it from detect's ``OpenEvent`` (every second), or
from any later ``Motion`` of it (each carries the event's ``start``), and
writes its clip as if the start had come: from what the ring (or capture's
pre-roll) still holds back to ``start - rec_sec_before``, then live. What
nobody held is said in the catalogue (``clips.missed``: the seconds of the
event before the clip's first frame that no clip of it covers).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from common.catalogue import CatalogueWriter
from common.fmp4 import Fmp4Writer, KeyframeGate
from common.gopring import GopRing, Packet
from common.messages import Motion, OpenEvent
from services.record.naming import clip_path, next_boundary

if TYPE_CHECKING:
    from common.config import RecordConfig

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 2.0
LATENCY_SLACK = 2.0  # extra pre-roll kept for detect's lag behind the video
EVENT_WRITE_SECONDS = 10.0  # catalogue updates of a running event, at most this often
ENDED_KEPT = 64  # ended event ids remembered, so a late word of one does not reopen it
MISSED_SLACK = 0.05  # seconds: a clip that starts this close to its event is whole
# A recorder just started keeps the video it subscribed to (capture's pre-roll,
# replayed for it) until detect has said what is open, at most this long: let
# go and asked for again, the pre-roll would reach back that much less.
HEAR_DETECT_SECONDS = 3.0
# ... and keeps this much more of it in its ring meanwhile: an event heard of
# late then wants rec_sec_before ahead of a start that may be seconds back,
# which capture's replay holds (its h264 ring: rec_sec_before + 7 s) and a
# ring trimmed to rec_sec_before + 2 s from the newest packet no longer did
# (bench/faults.py --record-restarts: 0.2 s of an event's pre-roll lost).
JUST_STARTED_SECONDS = 10.0


@dataclass(frozen=True)
class ClipNote:
    """What the service publishes as a ``Recording`` message."""

    phase: str  # "started" | "progress" | "finished"
    path: str
    start: float
    end: float = 0.0
    duration: float = 0.0
    size: int = 0
    event_id: str = ""
    reason: str = "event"
    frames: int = 0


@dataclass
class _Session:
    slot: str
    reason: str
    event_ids: list[str] = field(default_factory=list)
    stop_at: float | None = None  # capture ts where the clip ends; None: open-ended
    boundary: float = 0.0  # continuous: cut at the first keyframe at/after this
    from_ts: float | None = None  # waiting: from the keyframe at/before this, once
    ready_ts: float = 0.0  # ... the video has reached this (the event's start)
    writer: Fmp4Writer | None = None
    path: Path | None = None  # where it is being written
    final: Path | None = None  # where it ends up (differs with a staging folder)
    start_ts: float = 0.0
    last_progress: float = 0.0
    event_start: float | None = None  # an event's first clip: when that event started


@dataclass
class _EventInfo:
    camera: str
    start: float
    labels: set[str] = field(default_factory=set)
    zones: set[str] = field(default_factory=set)
    boxes: list[list[float]] = field(default_factory=list)
    score: float = 0.0
    area: float = 0.0
    alert: bool = False
    last_seen: float = 0.0  # clock
    written: float = 0.0  # clock of the last catalogue write


MAX_RETRY_SECONDS = 60.0


class Recorder:
    def __init__(self, cfg: RecordConfig, camera: str, storage: Path, catalogue: CatalogueWriter,
                 clock: Callable[[], float] = time.time, staging: Path | None = None) -> None:
        self.cfg = cfg
        self.camera = camera
        self.storage = storage
        self.staging = staging
        self.catalogue = catalogue
        self.clock = clock
        self._ring_seconds = cfg.rec_sec_before + LATENCY_SLACK
        self.ring = GopRing(self._ring_seconds + JUST_STARTED_SECONDS,
                            int(cfg.preroll_max_mb * 1024 * 1024))
        self.sessions: dict[str, _Session] = {}
        self.events: dict[str, _EventInfo] = {}  # running events
        self.outbox: list[ClipNote] = []
        self.gate = KeyframeGate()  # the ring and every clip start at a keyframe
        # After a failed write (a full disk), no clip opens before retry_at, and
        # the wait doubles per failure: not one empty clip per keyframe.
        self.retry_at = 0.0
        self.backoff = 0.0  # > 0 from a failed write until one succeeds
        self.last_write_error = ""
        self.counters: dict[str, Any] = {"clips": 0, "skipped": 0, "write_errors": 0,
                                         "bad_motion": 0, "replay_dropped": 0}
        self.on_demand = False  # capture keeps the pre-roll: video only while needed
        self.replay_ok = True  # a replay now is for us: we have just subscribed
        self.snapshot_wanted = False  # a keyframe is wanted for a snapshot
        self._byte_rate = 0.0
        self._ended: deque[str] = deque(maxlen=ENDED_KEPT)
        self.heard_detect = False  # an OpenEvent came
        self._hold_until = clock() + HEAR_DETECT_SECONDS

    # -- inputs -------------------------------------------------------------------
    def supply(self, preroll: float) -> None:
        """What capture said of its h264 (``VideoSupply``)."""
        on_demand = preroll > 0
        if on_demand != self.on_demand:
            log.info("capture %s", f"keeps {preroll:.0f} s of pre-roll: video only while "
                     "recording" if on_demand else "has no pre-roll: video all the time")
        self.on_demand = on_demand

    def wants_video(self) -> bool:
        return not self.on_demand or self.cfg.continuous or bool(self.sessions) \
            or self.snapshot_wanted \
            or (not self.heard_detect and self.clock() < self._hold_until)

    def video_on(self) -> None:
        """Subscribed again: what comes first is capture's pre-roll, for us."""
        self.replay_ok = True

    def video_off(self) -> None:
        """Unsubscribed: what the ring holds goes stale."""
        self.ring.clear()
        self.gate.restart()

    def on_video(self, pkt: Packet, gap: int = 0) -> None:
        newest = self.ring.newest
        if pkt.replay and (not self.replay_ok or (newest is not None and pkt.pts <= newest.pts)):
            # Someone else subscribed (or a second replay came before any live
            # packet): we have this stretch already. The live video after it
            # goes on in the GOP we hold (capture's h264 ring: the encoder
            # went on) or starts at a keyframe (a JPEG pre-roll: a new
            # encoder), so nothing of ours is lost and no keyframe waited for.
            self.counters["replay_dropped"] += 1
            return
        if not pkt.replay:
            self.replay_ok = False
        if gap:
            self.gate.restart()  # the frames a gap lost may be this GOP's references
        if not self.gate.admit(pkt.keyframe):
            self.counters["skipped"] += 1
            return
        self.ring.add(pkt)
        for slot in list(self.sessions):
            self._feed(self.sessions[slot], pkt)
        if self.cfg.continuous and "continuous" not in self.sessions and pkt.keyframe \
                and self.clock() >= self.retry_at:
            self._open(_Session("continuous", "continuous"), [pkt])

    def on_open_event(self, o: OpenEvent) -> None:
        """detect's latest word on the event it has open: one we never heard
        start is started now, from its ``start``; one we have open that detect
        has not is over (detect restarted and forgot it: no end will come).
        It comes on the socket of detect's ``Motion``, after them, so it is
        never older than the start or end we heard."""
        self.heard_detect = True
        try:
            self._on_open_event(o)
        finally:
            self._settle_ring()

    def _settle_ring(self) -> None:
        """What is open is known (or detect is not there): the ring keeps
        its own length from now on."""
        self.ring.seconds = self._ring_seconds

    def _on_open_event(self, o: OpenEvent) -> None:
        for eid, info in list(self.events.items()):
            if eid != o.event_id and info.camera == o.camera:
                log.warning("event %s: detect no longer has it open, ending it", eid)
                self._end_unheard(eid, info)
        if o.last_id and o.last_id not in self._ended and o.last_id not in self.events:
            if self.catalogue.event(o.last_id) is not None:
                self._ended.append(o.last_id)  # heard before a restart: done with
            else:  # begun and ended while no recorder listened: what is held of it
                self.on_motion(Motion(camera=o.camera, seq=o.seq, ts=o.last_end,
                                      event_id=o.last_id, phase="end", start=o.last_start))
        if not o.event_id:
            return
        info = self.events.get(o.event_id)
        if info is not None:
            info.last_seen = self.clock()  # alive, though nothing moves (no updates)
            return
        if o.event_id in self._ended:
            return
        self.on_motion(Motion(camera=o.camera, seq=o.seq, ts=o.ts, event_id=o.event_id,
                              phase="update", labels=o.labels, zones=o.zones, alert=o.alert,
                              test_run=o.test_run, start=o.start))

    def on_motion(self, m: Motion) -> None:
        now = self.clock()
        if m.phase not in ("start", "update", "end"):
            self.counters["bad_motion"] += 1
            log.warning("motion phase %r of event %s ignored", m.phase, m.event_id)
            return
        info = self.events.get(m.event_id)
        if info is None and m.event_id in self._ended:
            return  # ended here already (timed out): its clip is done
        new = info is None
        if info is None:
            # Not its start: we were not listening then. The event began at
            # m.start (0 from an older detect: this message's time is all we know).
            info = _EventInfo(m.camera, min(m.start or m.ts, m.ts))
            if m.phase != "start":
                log.warning("event %s heard of late (%s, %.1f s after its start)", m.event_id,
                            m.phase, m.ts - info.start)
            if m.phase != "end":
                self.events[m.event_id] = info
        info.labels.update(m.labels)
        info.zones.update(m.zones)
        info.boxes = [list(b) for b in m.boxes] or info.boxes
        info.score = max(info.score, m.score)
        info.area = max(info.area, m.area)
        info.alert = info.alert or m.alert
        info.last_seen = now
        if m.phase == "end":
            self.events.pop(m.event_id, None)
            self._ended.append(m.event_id)
            self._write_event(m.event_id, info, end=m.ts)
            if not self.cfg.events:
                return
            if new and self.cfg.event_mode == "all":
                # Its whole life went by while we were not listening: what is
                # still held of it, to its post-roll.
                s = self.sessions.get("event")
                if s is None:
                    self._start_from_ring(_Session(
                        "event", "event", [m.event_id], stop_at=m.ts + self.cfg.rec_sec_after,
                        event_start=info.start), info.start)
                    return
                self._attach(s, m.event_id)
            self._edge(m.event_id, m.ts, starting=False)
            return
        if new or now - info.written >= EVENT_WRITE_SECONDS:
            self._write_event(m.event_id, info)
        if new and self.cfg.events:
            self._edge(m.event_id, info.start, starting=True)

    def poll(self, now: float) -> None:
        """Progress notes for growing clips; end events detect forgot."""
        if self.ring.seconds != self._ring_seconds and now >= self._hold_until:
            self._settle_ring()  # detect is not there: nothing more to wait for
        for eid, info in list(self.events.items()):
            if now - info.last_seen > self.cfg.event_timeout_seconds:
                log.warning("event %s: nothing from detect for %.0f s, ending it", eid,
                            now - info.last_seen)
                self._end_unheard(eid, info)
        for s in self.sessions.values():
            if s.writer is not None and now - s.last_progress >= PROGRESS_SECONDS:
                s.last_progress = now
                self._note("progress", s)

    def _end_unheard(self, eid: str, info: _EventInfo) -> None:
        """End an event whose end we will never hear, at the newest video."""
        newest = self.ring.newest
        end = newest.ts if newest else info.start
        del self.events[eid]
        self._ended.append(eid)
        self._write_event(eid, info, end=end)
        if self.cfg.events:
            self._edge(eid, end, starting=False)

    def close_all(self) -> None:
        """Finish every clip (drain on stop)."""
        for s in list(self.sessions.values()):
            self._finish(s)

    # -- queries ------------------------------------------------------------------
    def open_paths(self) -> set[str]:
        return {str(s.path) for s in self.sessions.values() if s.path is not None}

    def clip_for_event(self, event_id: str) -> Path | None:
        """Final path of the clip recording ``event_id`` now, if any."""
        for s in self.sessions.values():
            if event_id in s.event_ids and s.final is not None:
                return s.final
        return None

    def byte_rate(self) -> float:
        """Bytes per second of the video (the last known while none comes)."""
        self._byte_rate = self.ring.byte_rate() or self._byte_rate
        return self._byte_rate

    def growing_bytes(self) -> int:
        return sum(s.writer.size() for s in self.sessions.values() if s.writer is not None)

    # -- events -------------------------------------------------------------------
    def _edge(self, event_id: str, ts: float, starting: bool) -> None:
        s = self.sessions.get("event")
        after = ts + self.cfg.rec_sec_after
        if self.cfg.event_mode == "all":
            if starting:
                if s is not None:
                    self._attach(s, event_id)
                    s.stop_at = None
                else:
                    self._start_from_ring(_Session("event", "event", [event_id],
                                                   event_start=ts), ts)
            elif s is not None and not self.events:
                s.stop_at = after
            return
        if s is not None:
            self._attach(s, event_id)
            s.stop_at = max(s.stop_at or after, after)
        else:
            self._start_from_ring(_Session("event", "edge", [event_id], stop_at=after,
                                           event_start=ts), ts)

    def _attach(self, s: _Session, event_id: str) -> None:
        if event_id not in s.event_ids:
            s.event_ids.append(event_id)
            if s.path is not None:
                self.catalogue.link_event(s.path, event_id)

    def _start_from_ring(self, s: _Session, ts: float) -> None:
        self.sessions[s.slot] = s
        s.from_ts, s.ready_ts = ts - self.cfg.rec_sec_before, ts
        newest = self.ring.newest
        if newest is not None and newest.ts >= ts:
            packets = self.ring.since(s.from_ts)
            if s.stop_at is not None and packets[0].ts >= s.stop_at:
                del self.sessions[s.slot]
                log.warning("events %s: nothing of their clip's window is held any more",
                            ", ".join(s.event_ids))
                return
            self._open(s, packets)
        # else: pending, opened by _feed once the video reaches ts (capture's
        # pre-roll is on its way), or at the next keyframe

    def _write_event(self, event_id: str, info: _EventInfo, end: float = 0.0) -> None:
        info.written = self.clock()
        self.catalogue.upsert_event(event_id, info.camera, info.start, end=end,
                                    labels=info.labels, zones=info.zones, boxes=info.boxes,
                                    score=info.score, area=info.area, alert=info.alert)

    # -- clips --------------------------------------------------------------------
    def _feed(self, s: _Session, pkt: Packet) -> _Session | None:
        """Give ``pkt`` to session ``s``; returns the session that now holds the
        slot (a new one after a split) or None when the clip ended."""
        if s.writer is None:
            if s.stop_at is not None and pkt.ts >= s.stop_at:
                self.sessions.pop(s.slot, None)  # its window passed before any keyframe
                return None
            if self.clock() < self.retry_at:
                return s
            if s.from_ts is not None:
                if pkt.ts < s.ready_ts:
                    return s
                packets = self.ring.since(s.from_ts)  # ends with pkt (in the ring already)
                s.from_ts = None
                if packets and packets[-1] is pkt:
                    self._open(s, packets)
                    return self.sessions.get(s.slot)
            if not pkt.keyframe:
                return s
            self._open(s, [pkt])
            return self.sessions.get(s.slot)
        if s.stop_at is not None and pkt.ts >= s.stop_at:
            self._finish(s)
            return None
        if pkt.keyframe and self._must_split(s, pkt):
            self._finish(s)
            nxt = _Session(s.slot, s.reason, list(s.event_ids), s.stop_at)
            self._open(nxt, [pkt])
            return self.sessions.get(s.slot)
        self._write(s, pkt)
        return s if s.writer is not None else self.sessions.get(s.slot)

    def _must_split(self, s: _Session, pkt: Packet) -> bool:
        assert s.writer is not None
        if s.slot == "continuous":
            return pkt.ts >= s.boundary
        if pkt.width != s.writer.width or pkt.height != s.writer.height:
            return True
        return pkt.ts - s.start_ts >= self.cfg.max_clip_seconds

    def _open(self, s: _Session, packets: list[Packet]) -> None:
        first = packets[0]
        self.sessions[s.slot] = s
        continuous = s.slot == "continuous"
        taken = {str(x.final) for x in self.sessions.values() if x.final is not None}
        s.final = clip_path(self.storage, self.camera, first.ts, continuous, taken=taken)
        s.path = (self.staging / s.final.name) if self.staging else s.final
        s.start_ts = first.ts
        s.boundary = next_boundary(first.ts, self.cfg.continuous_minutes)
        s.last_progress = self.clock()
        try:
            s.writer = Fmp4Writer(s.path, first.width, first.height, first.fps,
                                  self.cfg.fragment_seconds)
        except (OSError, av.error.FFmpegError) as exc:  # full disk, read-only card ...
            if s.path.exists() and _size(s.path) == 0:
                s.path.unlink()  # a fresh name of ours: what the failed open left
            self._write_failed(s, exc)
            return
        event_id = s.event_ids[0] if s.event_ids else ""
        missed = self._missed(s, first.ts)
        if missed:
            log.warning("clip %s of event %s: its first %.1f s are lost (nobody held them)",
                        s.final.name, event_id, missed)
        self.catalogue.add_clip(s.path, self.camera, first.ts, s.reason, event_id,
                                missed=missed)
        for eid in s.event_ids[1:]:
            self.catalogue.link_event(s.path, eid)
        self.counters["clips"] += 1
        self._note("started", s)
        cur: _Session | None = s
        self._write(s, first)
        for pkt in packets[1:]:
            if cur is None or cur.writer is None:
                break
            cur = self._feed(cur, pkt)

    def _missed(self, s: _Session, first_ts: float) -> float:
        """Seconds of the event before ``first_ts`` that no clip of it holds:
        0 but for the first clip of an event heard of late (a clip written
        before a restart, recovered since, covers its stretch)."""
        if s.event_start is None or not s.event_ids:
            return 0.0
        covered = s.event_start
        for clip in self.catalogue.clips_for(s.event_ids[0]):
            if clip.path != str(s.path) and clip.start <= covered + MISSED_SLACK:
                covered = max(covered, clip.end)
        missed = first_ts - covered
        return round(missed, 2) if missed > MISSED_SLACK else 0.0

    def _write(self, s: _Session, pkt: Packet) -> None:
        assert s.writer is not None
        try:
            s.writer.write(pkt.data, pkt.pts, pkt.keyframe, pkt.ts)
        except (OSError, av.error.FFmpegError) as exc:
            self._write_failed(s, exc)
            return
        self.backoff = 0.0

    def _write_failed(self, s: _Session, exc: Exception) -> None:
        self.counters["write_errors"] += 1
        self.last_write_error = f"{s.path}: {exc}"[:300]
        self.backoff = min(max(1.0, self.backoff * 2), MAX_RETRY_SECONDS)
        self.retry_at = self.clock() + self.backoff
        if self.counters["write_errors"] <= 20:
            log.error("clip %s: %s; retrying in %.0f s", s.path, exc, self.backoff)
        if s.writer is not None:
            self._finish(s)
        # A fresh pending session for the same purpose opens at the next keyframe.
        self.sessions[s.slot] = _Session(s.slot, s.reason, list(s.event_ids), s.stop_at)

    def _finish(self, s: _Session) -> None:
        if self.sessions.get(s.slot) is s:
            del self.sessions[s.slot]
        if s.writer is None or s.path is None or s.final is None:
            return
        writer, s.writer = s.writer, None
        try:
            writer.close()
        except (OSError, av.error.FFmpegError) as exc:
            self.counters["write_errors"] += 1
            log.error("closing clip %s: %s", s.path, exc)
        if s.path != s.final:
            try:
                s.final.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(s.path, s.final)
            except OSError as exc:
                log.error("moving %s to %s: %s (kept in staging)", s.path, s.final, exc)
                s.final = s.path
        size = writer.size() if s.final == s.path else _size(s.final)
        if writer.frames == 0 or size == 0:  # nothing reached the disk: no empty clip
            s.final.unlink(missing_ok=True)
            self.catalogue.delete_clip(s.path)
            return
        self.catalogue.finish_clip(s.path, end=writer.last_ts, duration=writer.duration,
                                   size=size, frames=writer.frames, new_path=s.final)
        self.outbox.append(ClipNote("finished", str(s.final), s.start_ts, writer.last_ts,
                                    writer.duration, size,
                                    s.event_ids[0] if s.event_ids else "", s.reason,
                                    writer.frames))

    def _note(self, phase: str, s: _Session) -> None:
        w = s.writer
        self.outbox.append(ClipNote(
            phase, str(s.path), s.start_ts, w.last_ts if w else 0.0, w.duration if w else 0.0,
            w.size() if w else 0, s.event_ids[0] if s.event_ids else "", s.reason,
            w.frames if w else 0))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
