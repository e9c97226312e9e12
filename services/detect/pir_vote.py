"""The PIR sensor's vote on an event's alert (``detect.pir``).

Pixels see insects in the IR light, rain, headlights; a PIR sensor sees warm
bodies moving. With ``pir = "always"``, or ``"at_night"`` while the IR light
is on, an event alerts only once the PIR fired within ``pir_window_seconds``
of the event's pixel motion, in either order: a PIR edge shortly before the
first moving frame counts, and so does one arriving while the event is open
(a warm body reaches the sensor's field later than the camera's, or the other
way round). The event itself is still opened and recorded as before; only its
``alert`` is held back, and released by an ``update`` when the vote comes, so
notify alerts on that update exactly as on a zone or label that comes late.

When the PIR cannot vote, pixels alone decide (fail open: a dead sensor, an
unplugged controller or a stopped ir service must not silence every alert):
it can vote while the ir service's ``brightness/`` says ``pir=True`` (the
device confirmed it watches the sensor) and is no older than ``stale``
seconds. Each change of that is logged once. A sensor that is set up but
never fires (a loose wire) is indistinguishable from an empty garden, so
when an event is held back and no PIR trigger has been seen since detect
started, that is logged once as a warning naming ``ir.pir_pin``.

Pure logic on timestamps: the frames' capture time and the PIR messages'
``ts`` are both ``time.time()`` on the one Pi; ``now`` (for staleness) is the
service's clock.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from services.detect.events import EventChange

log = logging.getLogger(__name__)

NEVER = float("-inf")


@dataclass(slots=True)
class _Held:
    """What the vote knows of the open event."""

    event_id: str
    last: EventChange  # its latest change, the template of a released update
    last_motion: float  # capture time of its latest moving frame
    wanted: bool = False  # the event machine says alert (zones, labels satisfied)
    sent: bool = False  # an alert went out for it
    voted: bool = False  # the PIR fired within the window of its motion


class PirVote:
    def __init__(self, mode: str, window: float, stale: float, started: float) -> None:
        self.mode = mode
        self.window = window
        self.stale = stale
        self.night = False
        self._usable_at = NEVER  # service clock of the last brightness/ with pir=True
        self._usable_logged: bool | None = None
        self._since = started  # the ir service gets ``stale`` s to say it is there
        self._active = False  # the sensor's output now
        self._last_edge = NEVER  # ts of its latest edge, rising or falling
        self._held: _Held | None = None
        self._warned_silent = False
        self.counters = {"pir_triggers": 0, "pir_voted": 0, "pir_held": 0}

    # -- inputs -----------------------------------------------------------------
    def brightness(self, now: float, pir_usable: bool, night: bool) -> None:
        """A ``brightness/`` from the ir service: can the PIR vote, is it night."""
        self.night = night
        if pir_usable:
            self._usable_at = now

    def pir(self, ts: float, active: bool) -> list[EventChange]:
        """A ``pir/`` edge; returns an update when it releases a held alert."""
        if not active:
            # Only a real fall ends activity: the state the device reports when
            # the sensor is enabled is no trigger.
            if self._active:
                self._last_edge = ts
            self._active = False
            return []
        self._active = True
        self._last_edge = ts
        self.counters["pir_triggers"] += 1
        held = self._held
        if held is not None and not held.voted and held.last_motion >= ts - self.window:
            self._vote(held)
            return self._release(ts)
        return []

    def frame(self, now: float, ts: float, moving: bool,
              changes: list[EventChange]) -> list[EventChange]:
        """One frame's event changes, ``alert`` gated; plus an update when a
        held alert is released. ``moving`` is the frame's pixel motion."""
        required = self.required(now)
        if moving and self._held is not None:
            self._moved(self._held, ts)
        out: list[EventChange] = []
        for change in changes:
            held = self._held
            if change.phase == "start" or held is None or held.event_id != change.event_id:
                held = self._held = _Held(change.event_id, change, NEVER)
                if moving:
                    self._moved(held, ts)
            held.wanted = change.alert
            if change.alert and not held.sent and required and not held.voted:
                change = dataclasses.replace(change, alert=False)
            held.sent = held.sent or change.alert
            held.last = change
            out.append(change)
            if change.phase == "end":
                if held.wanted and not held.sent:
                    self._count_held()
                self._held = None
        if self._held is not None and (self._held.voted or not required):
            out += self._release(ts)  # the vote came, or is no longer asked for
        return out

    # -- state --------------------------------------------------------------------
    def required(self, now: float) -> bool:
        """Whether an alert needs the PIR's vote now."""
        if self.mode == "never" or (self.mode == "at_night" and not self.night):
            return False
        usable = now - self._usable_at <= self.stale
        if usable != self._usable_logged and (usable or now - self._since > self.stale):
            if usable:
                log.info("detect.pir=%s: the PIR sensor votes on alerts", self.mode)
            else:
                log.warning("detect.pir=%s: no PIR sensor reachable (ir service or its "
                            "controller down, or the firmware refused PIR): pixels alone "
                            "alert until it is back", self.mode)
            self._usable_logged = usable
        return usable

    # -- internals ------------------------------------------------------------------
    def _moved(self, held: _Held, ts: float) -> None:
        held.last_motion = ts
        if not held.voted and self._near(ts):
            self._vote(held)

    def _near(self, ts: float) -> bool:
        return self._active or abs(ts - self._last_edge) <= self.window

    def _vote(self, held: _Held) -> None:
        held.voted = True
        self.counters["pir_voted"] += 1

    def _release(self, ts: float) -> list[EventChange]:
        held = self._held
        if held is None or not held.wanted or held.sent:
            return []
        held.sent = True
        held.last = dataclasses.replace(held.last, phase="update", ts=ts, alert=True, reason="")
        return [held.last]

    def _count_held(self) -> None:
        self.counters["pir_held"] += 1
        if self.counters["pir_triggers"] == 0 and not self._warned_silent:
            self._warned_silent = True
            log.warning("detect.pir=%s held back an alert, and the PIR sensor has not fired "
                        "once since detect started: is it wired to ir.pir_pin?", self.mode)
