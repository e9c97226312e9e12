"""The event state machine: per-frame motion in, event start/update/end out.

    idle --(motion on frames_to_start consecutive frames)--> active
    active --(no motion for quiet_seconds)--> idle (+ cooldown)
    active --(max_event_time reached)--> idle, and the background is re-based

Pure logic on timestamps (capture time of each frame), so replay, tests and
the live service behave the same. ``frames_to_start`` is camera frames: an
analysed frame counts for the ``ratio`` it stands for
(``services.detect.rate``). ``alert`` says whether the event meets the
alerting conditions (touched a required zone, has a confirmed label); it can
become true during an event, which sends an update.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from services.detect.rate import reached

if TYPE_CHECKING:
    from common.config import DetectConfig


@dataclass(slots=True)
class EventChange:
    phase: str  # "start" | "update" | "end"
    event_id: str
    ts: float  # capture time of the frame that caused it
    boxes: list[list[float]] = field(default_factory=list)
    area: float = 0.0
    score: float = 0.0
    labels: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    alert: bool = True
    reason: str = ""  # for "end": "quiet" | "max_time" | "stopped"
    loitering: dict[str, float] = field(default_factory=dict)  # zone -> seconds someone stayed
    crossings: list[str] = field(default_factory=list)  # "Line:forward" | "Line:backward"


@dataclass(slots=True)
class _Event:
    event_id: str
    start: float
    last_motion: float
    last_update: float
    boxes: list[list[float]]
    area: float
    score: float
    zones: set[str] = field(default_factory=set)
    labels: dict[str, float] = field(default_factory=dict)
    alert: bool = False
    loitering: dict[str, float] = field(default_factory=dict)
    crossings: list[str] = field(default_factory=list)


def new_event_id(ts: float) -> str:
    # os.urandom is what secrets.token_hex reads; secrets itself imports hashlib
    # and with it OpenSSL's libcrypto (3.8 MB of the detect process).
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(ts)) + "-" + os.urandom(3).hex()


class EventMachine:
    def __init__(self, config: DetectConfig, update_seconds: float | None = None,
                 frames_to_start: int | None = None) -> None:
        self.config = config
        self.update_seconds = config.update_seconds if update_seconds is None else update_seconds
        # The tracker already asks for persistence: then one frame is enough here.
        self.frames_to_start = config.frames_to_start if frames_to_start is None else frames_to_start
        self.required_zones = {z.name for z in config.zones if z.required and not z.loiter_seconds}
        # A required zone with loitering counts once someone stayed there.
        self.required_loiter = {z.name for z in config.zones if z.required and z.loiter_seconds}
        self.required_lines = {ln.name for ln in config.lines if ln.required}
        self.require_label = config.confirm.require_label and config.confirm.method != "none"
        self.streak: float = 0  # camera frames of motion in a row
        self.ratio = 1  # camera frames this frame stands for, set by the detector
        self.cooldown_until = float("-inf")
        self.event: _Event | None = None
        self.rebase_requested = False

    @property
    def active(self) -> bool:
        return self.event is not None

    def step(self, ts: float, moving: bool, boxes: list[list[float]], area: float,
             score: float, zones: list[str]) -> tuple[bool, list[EventChange]]:
        """One frame. Returns (motion for this frame after persistence, changes)."""
        changes: list[EventChange] = []
        ev = self.event
        if ev is None:
            if moving and ts >= self.cooldown_until:
                self.streak += self.ratio if self.streak else 1
            else:
                self.streak = 0
            if not reached(self.streak, self.frames_to_start):
                return False, changes
            ev = self.event = _Event(new_event_id(ts), ts, ts, ts, boxes, area, score,
                                     set(zones))
            ev.alert = self._alert(ev)
            changes.append(self._change("start", ev, ts))
            return True, changes
        if moving:
            ev.last_motion = ts
            ev.boxes, ev.area, ev.score = boxes, area, max(score, ev.score)
            before = ev.alert
            ev.zones.update(zones)
            ev.alert = self._alert(ev)
            if ev.alert != before or ts - ev.last_update >= self.update_seconds:
                changes.append(self._change("update", ev, ts))
        if ts - ev.start >= self.config.max_event_time:
            changes.append(self._end(ts, "max_time"))
            self.rebase_requested = True
        elif not moving and ts - ev.last_motion >= self.config.quiet_seconds:
            changes.append(self._end(ts, "quiet"))
        return moving, changes

    def add_labels(self, ts: float, labels: dict[str, float]) -> list[EventChange]:
        """Confirmed objects (label -> score) for the current event."""
        ev = self.event
        if ev is None or not labels:
            return []
        new = {k: v for k, v in labels.items() if v > ev.labels.get(k, -1.0)}
        if not new:
            return []
        ev.labels.update(new)
        ev.score = max([ev.score, *new.values()])
        ev.alert = self._alert(ev)
        return [self._change("update", ev, ts)]

    def add_tracks(self, ts: float, loitering: dict[str, float],
                   crossings: list[str]) -> list[EventChange]:
        """Zones someone stayed in long enough, and lines crossed, in the current event."""
        ev = self.event
        if ev is None or not (loitering or crossings):
            return []
        ev.loitering.update(loitering)
        ev.crossings += [c for c in crossings if c not in ev.crossings]
        ev.alert = self._alert(ev)
        return [self._change("update", ev, ts)]

    def stop(self, ts: float) -> list[EventChange]:
        """End an open event (service stopping or paused)."""
        return [self._end(ts, "stopped")] if self.event is not None else []

    def _alert(self, ev: _Event) -> bool:
        if self.required_zones or self.required_loiter or self.required_lines:
            crossed = {c.split(":", 1)[0] for c in ev.crossings}
            if not (ev.zones & self.required_zones or self.required_loiter & set(ev.loitering)
                    or self.required_lines & crossed):
                return False
        return not (self.require_label and not ev.labels)

    def _change(self, phase: str, ev: _Event, ts: float, reason: str = "") -> EventChange:
        ev.last_update = ts
        return EventChange(phase, ev.event_id, ts, list(ev.boxes), round(ev.area, 5),
                           round(ev.score, 4), sorted(ev.labels), sorted(ev.zones), ev.alert,
                           reason, dict(ev.loitering), list(ev.crossings))

    def _end(self, ts: float, reason: str) -> EventChange:
        assert self.event is not None
        change = self._change("end", self.event, ts, reason)
        self.event = None
        self.streak = 0
        self.cooldown_until = ts + self.config.cooldown_seconds
        return change


class OnsetBackfill:
    """Per-frame answers with each event's onset included.

    An event confirmed on frame k after ``frames_to_start`` frames of motion
    began on the first of them; those frames are answered "motion" once the
    event is confirmed, which is ``frames_to_start - 1`` frames later (the
    recorder's pre-roll covers them the same way). Answers therefore come out
    with that delay: ``push`` returns the answers now final, ``flush`` the rest.
    The same holds for a track confirmed while an event is open (someone
    else walking in, or the same person's track rebuilt after it broke):
    pass ``FrameResult.onset`` as ``started``.
    """

    def __init__(self, frames_to_start: int) -> None:
        self.delay = max(0, frames_to_start - 1)
        self._pending: list[tuple[bool, bool, object]] = []  # (motion, raw, item)

    def push(self, motion: bool, raw: bool, started: bool, item: object
             ) -> list[tuple[bool, object]]:
        if started:
            for i in range(len(self._pending) - 1, -1, -1):
                _, was_raw, it = self._pending[i]
                if not was_raw:
                    break
                self._pending[i] = (True, was_raw, it)
        self._pending.append((motion, raw, item))
        ready = self._pending[:max(0, len(self._pending) - self.delay)]
        del self._pending[:len(ready)]
        return [(m, it) for m, _, it in ready]

    def flush(self) -> list[tuple[bool, object]]:
        ready, self._pending = self._pending, []
        return [(m, it) for m, _, it in ready]
