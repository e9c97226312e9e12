"""Day and night profiles: which one detect uses now.

A profile's settings are ``profile_config``: the night's are the detect
section with ``[detect.night]``'s overrides (threshold, area, masks,
confirmation) laid over it. ``ProfileSwitch`` decides which is in force from
the one notion of night detect has, the IR light being on (``is_night``, which
the PIR vote and camera health use too), or from the schedule's local times.
The service applies a change from the next frame (``Detector.use_profile``).

Pure logic: the caller passes the time and the IR state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from common.config_view import ConfigView
from common.messages import DETECT_PROFILES as PROFILES

if TYPE_CHECKING:
    from common.config import DetectConfig

DAY, NIGHT = PROFILES
IR_ON = 0.05  # illuminator output above this: the IR light is on


def is_night(ir_level: float) -> bool:
    """The IR light is on: what "at night" means everywhere in detect."""
    return ir_level > IR_ON


def profile_config(config: DetectConfig, name: str) -> DetectConfig:
    """The detect settings of profile ``name``; the day's are the section's.
    Works on the validated model and on the services' plain view alike."""
    if name == DAY:
        return config
    fields = dict(config)
    fields.update((key, value) for key, value in config.night if value is not None)
    return ConfigView(fields)  # type: ignore[return-value]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def in_schedule(start: str, end: str, minute_of_day: int) -> bool:
    """``minute_of_day`` (local) falls in start..end, which may span midnight."""
    a, b = _minutes(start), _minutes(end)
    return a <= minute_of_day < b if a < b else minute_of_day >= a or minute_of_day < b


def local_minute(ts: float) -> int:
    t = time.localtime(ts)
    return t.tm_hour * 60 + t.tm_min


@dataclass(frozen=True, slots=True)
class Active:
    name: str  # DAY or NIGHT
    since: float  # time.time() of the switch
    why: str  # what decided it, for the status page: "IR on", "schedule 20:30-06:30"


class ProfileSwitch:
    """Which profile is in force, following ``detect.night_when``."""

    def __init__(self, config: DetectConfig, now: float,
                 minute_of: Callable[[float], int] = local_minute) -> None:
        self.when = config.night_when
        self.start, self.end = config.night_start, config.night_end
        self.minute_of = minute_of
        why = {"ir": "no IR state yet", "never": "night profile off"}.get(self.when, "")
        self.active = Active(DAY, now, why)
        self.decide(now, None)

    def decide(self, now: float, ir_night: bool | None) -> Active | None:
        """The profile from now on if it changed (``ir_night``: the IR light is
        on, None while nobody has said), else None."""
        if self.when == "ir":
            if ir_night is None:
                return None
            name, why = (NIGHT, "IR on") if ir_night else (DAY, "IR off")
        elif self.when == "schedule":
            night = in_schedule(self.start, self.end, self.minute_of(now))
            name = NIGHT if night else DAY
            why = f"schedule {self.start}-{self.end}" if night else \
                f"schedule {self.end}-{self.start}"
        else:
            return None
        if name == self.active.name:
            if why != self.active.why:  # the IR state is heard again after a silence
                self.active = replace(self.active, why=why)
            return None
        self.active = Active(name, now, why)
        return self.active

    def ir_silent(self, heard: float) -> None:
        """No IR state has come since ``heard`` (the ir service is gone): the
        profile stays as it was, and the status page says since when the IR
        light is not known rather than go on claiming "IR on"."""
        if self.when == "ir":
            why = f"no IR state since {time.strftime('%H:%M', time.localtime(heard))}"
            self.active = replace(self.active, why=why)
