"""Armed / disarmed / muted: one small state, one owner, one rule set.

notify owns it. Every change, wherever it comes from (the web page and
Telegram as ``Arm``/``Disarm``/``Mute``/``Unmute`` commands, MQTT, the
schedule, presence), goes through ``apply`` in notify, which alone saves the
file and publishes the result as ``ArmState``. Every other service reads the
file at start and follows ``state/`` afterwards. The file is replaced
atomically, so a power cut leaves either the old state or the new one.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace

from common.messages import Arm, ArmState, Disarm, Mute, Unmute
from common.paths import Home, write_json_atomically

ArmingCommand = Arm | Disarm | Mute | Unmute


@dataclass(frozen=True)
class Arming:
    armed: bool = True
    muted_until: float = 0.0
    changed_by: str = ""
    changed_at: float = 0.0

    def muted(self, now: float) -> bool:
        return now < self.muted_until

    def alerts_on(self, now: float) -> bool:
        return self.armed and not self.muted(now)

    @classmethod
    def from_message(cls, state: ArmState) -> Arming:
        return cls(state.armed, state.muted_until, state.changed_by, state.changed_at)


def apply(state: Arming, command: ArmingCommand, now: float) -> Arming:
    """The state after ``command``: the only place the arming rules live.

    Arming and disarming keep a mute (muting is about alerts, arming about
    watching at all); a mute that has already ended is no mute.
    """
    if isinstance(command, Arm):
        new = replace(state, armed=True)
    elif isinstance(command, Disarm):
        new = replace(state, armed=False)
    elif isinstance(command, Mute):
        new = replace(state, muted_until=command.until if command.until > now else 0.0)
    else:
        new = replace(state, muted_until=0.0)
    return replace(new, changed_by=command.source, changed_at=now)


class ArmingStore:
    """The file. Only notify saves; the others load it once at start."""

    def __init__(self, home: Home) -> None:
        self.path = home.state_dir / "arming.json"

    def load(self) -> Arming:
        try:
            raw = json.loads(self.path.read_text())
            return Arming(armed=bool(raw["armed"]), muted_until=float(raw["muted_until"]),
                          changed_by=str(raw.get("changed_by", "")),
                          changed_at=float(raw.get("changed_at", 0.0)))
        except (OSError, ValueError, KeyError, TypeError):
            return Arming()

    def save(self, state: Arming) -> Arming:
        write_json_atomically(self.path, asdict(state))
        return state


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    h, m = int(hours), int(minutes)
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"{hhmm!r} is not a time of day (HH:MM)")
    return h * 60 + m


def parse_window(window: str) -> tuple[int, int]:
    """``"22:00-06:30"`` -> (start, end) minutes after midnight; may wrap midnight."""
    try:
        start, end = window.split("-")
        return _minutes(start), _minutes(end)
    except ValueError as exc:
        raise ValueError(f"{window!r} is not HH:MM-HH:MM ({exc})") from None


def in_window(window: tuple[int, int], minute_of_day: int) -> bool:
    start, end = window
    if start == end:
        return False
    if start < end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end  # wraps midnight


def minute_of_day(ts: float) -> int:
    t = time.localtime(ts)
    return t.tm_hour * 60 + t.tm_min


class ArmSchedule:
    """Arms at the start of each window and disarms at its end.

    Edge-triggered on purpose: a schedule says when to *change* the state, so a
    manual /disarm inside an armed window holds until the next edge instead of
    being undone a second later.
    """

    def __init__(self, windows: list[str]) -> None:
        self.windows = [parse_window(w) for w in windows]
        self._last: bool | None = None

    def wanted(self, ts: float) -> bool | None:
        """Armed state the schedule asks for at ``ts`` (None without windows)."""
        if not self.windows:
            return None
        minute = minute_of_day(ts)
        return any(in_window(w, minute) for w in self.windows)

    def edge(self, ts: float) -> bool | None:
        """The new armed state when a window starts or ends since the last call,
        else None. The first call only learns the current state."""
        wanted = self.wanted(ts)
        previous, self._last = self._last, wanted
        if wanted is None or previous is None or wanted == previous:
            return None
        return wanted
