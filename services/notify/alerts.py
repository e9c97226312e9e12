"""Which events become alerts, and what the alert says. Pure logic, no I/O.

An event alerts when the system is armed and not muted, detect marked it
``alert`` (zones/labels satisfied), and the camera is out of its cooldown.
Events that start during a cooldown are *grouped*: they are counted, not
sent, and the next alert says how many went by. Quiet hours either silence
the alert (no sound on the phone) or skip it.

The photo goes out as soon as both halves of an alert are known: the
decision (from the ``Motion`` start or the first update with ``alert``) and
the event snapshot (``Snapshot`` kind "event"). Either may arrive first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from common.arming import Arming, in_window, minute_of_day, parse_window
from common.messages import Motion

MAX_TRACKED = 200  # events remembered for clips and labels; older ones are forgotten


@dataclass
class EventInfo:
    event_id: str
    camera: str
    ts: float
    labels: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    loitering: dict[str, float] = field(default_factory=dict)  # zone -> seconds someone stayed
    crossings: list[str] = field(default_factory=list)  # "Line:forward"
    score: float = 0.0
    alerted: bool = False  # the decision: this event is an alert
    silent: bool = False
    grouped: int = 0  # events folded into this alert during the previous cooldown
    photo_sent: bool = False
    snapshot: bytes | None = None  # held only until the photo goes or the event ends unalerted
    decided_at: float = 0.0


@dataclass(frozen=True)
class AlertOut:
    """An alert ready to go: the photo (empty when it never came) and its caption."""

    event_id: str
    camera: str
    ts: float
    caption: str
    photo: bytes
    silent: bool


def caption(info: EventInfo) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.ts))
    parts = [f"Motion on {info.camera} at {when}"]
    if info.labels:
        parts.append("label: " + ", ".join(info.labels))
    who = ", ".join(info.labels) if info.labels else "something"
    for zone, seconds in sorted(info.loitering.items()):
        parts.append(f"{who} in {zone} for {seconds:.0f} s")
    for crossing in info.crossings:
        line, _, way = crossing.partition(":")
        parts.append(f"{who} crossed {line} ({way})")
    if info.zones:
        parts.append("zone: " + ", ".join(info.zones))
    if info.grouped:
        parts.append(f"+{info.grouped} more event(s) during the cooldown")
    return "\n".join(parts)


class AlertPolicy:
    def __init__(self, cooldown_seconds: float, quiet_hours: str = "",
                 quiet_mode: str = "silent") -> None:
        self.cooldown = cooldown_seconds
        self.quiet = parse_window(quiet_hours) if quiet_hours else None
        self.quiet_mode = quiet_mode
        self.events: OrderedDict[str, EventInfo] = OrderedDict()
        self._last_alert: dict[str, float] = {}  # camera -> ts of its last alert
        self._grouped: dict[str, int] = {}
        self.counters = {"alerts": 0, "grouped": 0, "suppressed": 0}

    def remember_alerted(self, event_ids: list[str]) -> None:
        """Events alerted before a restart: never alerted again."""
        for event_id in event_ids[-MAX_TRACKED:]:
            info = self._info(event_id, "", 0.0)
            info.alerted = info.photo_sent = True

    def alerted_ids(self) -> list[str]:
        return [e.event_id for e in self.events.values() if e.alerted and e.photo_sent]

    def _info(self, event_id: str, camera: str, ts: float) -> EventInfo:
        info = self.events.get(event_id)
        if info is None:
            info = self.events[event_id] = EventInfo(event_id, camera, ts)
            while len(self.events) > MAX_TRACKED:
                self.events.popitem(last=False)
        return info

    def is_quiet(self, ts: float) -> bool:
        return self.quiet is not None and in_window(self.quiet, minute_of_day(ts))

    def on_motion(self, motion: Motion, arming: Arming, now: float) -> AlertOut | None:
        """Feed a Motion message; returns an alert when its snapshot is already here.

        An event whose start was missed (notify was restarting) alerts on the
        first of its messages that arrives, its end included: late beats never.
        """
        missed_start = motion.event_id not in self.events
        info = self._info(motion.event_id, motion.camera, motion.ts)
        info.labels = sorted(set(info.labels) | set(motion.labels))
        info.zones = sorted(set(info.zones) | set(motion.zones))
        info.loitering.update(motion.loitering)
        info.crossings += [c for c in motion.crossings if c not in info.crossings]
        info.score = max(info.score, motion.score)
        if info.alerted or (motion.phase == "end" and not missed_start) or not motion.alert:
            out = self._ready(info)
        else:
            out = self._ready(info) if self._decide(info, arming, motion.ts, now) else None
        if motion.phase == "end" and not info.alerted:
            info.snapshot = None  # it will never alert: the picture is the recorder's now
        return out

    def _decide(self, info: EventInfo, arming: Arming, ts: float, now: float) -> bool:
        if not arming.alerts_on(now):
            self.counters["suppressed"] += 1
            return False
        silent = False
        if self.is_quiet(ts):
            if self.quiet_mode == "skip":
                self.counters["suppressed"] += 1
                return False
            silent = True
        last = self._last_alert.get(info.camera)
        if last is not None and 0 <= ts - last < self.cooldown:
            self._grouped[info.camera] = self._grouped.get(info.camera, 0) + 1
            self.counters["grouped"] += 1
            return False
        self._last_alert[info.camera] = ts
        info.alerted, info.silent, info.decided_at = True, silent, now
        info.grouped = self._grouped.pop(info.camera, 0)
        return True

    def on_snapshot(self, event_id: str, camera: str, ts: float, jpeg: bytes
                    ) -> AlertOut | None:
        """Feed an event snapshot; returns an alert when its decision is already made."""
        info = self._info(event_id, camera, ts)
        if info.photo_sent:
            return None  # a later picture of an alert that went already
        info.snapshot = jpeg
        return self._ready(info)

    def _ready(self, info: EventInfo) -> AlertOut | None:
        if not info.alerted or info.photo_sent or info.snapshot is None:
            return None
        info.photo_sent = True
        self.counters["alerts"] += 1
        photo, info.snapshot = info.snapshot, None  # up to 200 events are remembered
        return AlertOut(info.event_id, info.camera, info.ts, caption(info), photo, info.silent)

    def overdue(self, now: float, wait: float) -> list[AlertOut]:
        """Alerts whose snapshot is ``wait`` seconds late: they go out as text, so
        a camera whose picture never comes (pulled off the wall) still warns."""
        out = []
        for info in self.events.values():
            if (info.alerted and not info.photo_sent and info.snapshot is None
                    and now - info.decided_at >= wait):
                info.photo_sent = True
                self.counters["alerts"] += 1
                self.counters["without_photo"] = self.counters.get("without_photo", 0) + 1
                out.append(AlertOut(info.event_id, info.camera, info.ts, caption(info), b"",
                                    info.silent))
        return out

    def alerted(self, event_id: str) -> bool:
        info = self.events.get(event_id)
        return bool(info and info.alerted)

