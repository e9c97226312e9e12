"""Servo targets: the cover that follows arming, pan/tilt moved on command.

Pure logic: it turns an arming state or a ``rotate`` command's arguments into
``{board_pin: angle}`` and refuses, with a message naming the servo and the
limits, anything the hardware must not be sent.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.config import ServoConfig


class ServoError(ValueError):
    """A servo command refused before it reached the device."""


class ServoBank:
    def __init__(self, servos: list[ServoConfig]) -> None:
        self.servos = {s.name: s for s in servos}
        self.angles: dict[str, int] = {}  # last target per servo name

    def for_arming(self, armed: bool) -> dict[int, int]:
        """Targets of the servos that follow arming (at ``angle_on`` when armed)."""
        targets = {}
        for servo in self.servos.values():
            if servo.follow_arming:
                angle = servo.angle_on if armed else servo.angle_off
                self.angles[servo.name] = angle
                targets[servo.board_pin] = angle
        return targets

    def rotate(self, args: dict[str, Any]) -> dict[int, int]:
        """``{"pan": 30, "tilt": 20}`` -> pin targets. All-or-nothing: one bad
        angle refuses the whole command, so the camera never half-moves."""
        if not args:
            raise ServoError("rotate needs at least one servo angle, e.g. pan=30 tilt=20")
        targets: dict[int, int] = {}
        for name, raw in args.items():
            servo = self.servos.get(name)
            if servo is None:
                known = ", ".join(sorted(self.servos)) or "none configured"
                raise ServoError(f"no servo named {name!r} (servos: {known})")
            angle = _angle(name, raw)
            if not servo.min_angle <= angle <= servo.max_angle:
                raise ServoError(f"{name} angle {angle} is out of range "
                                 f"{servo.min_angle}..{servo.max_angle}")
            targets[servo.board_pin] = angle
        for name, raw in args.items():
            self.angles[name] = _angle(name, raw)
        return targets


def _angle(name: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ServoError(f"{name} angle {raw!r} is not a number")
    try:
        value = float(raw)
    except ValueError:
        raise ServoError(f"{name} angle {raw!r} is not a number") from None
    if not math.isfinite(value) or value != int(value):
        raise ServoError(f"{name} angle {raw!r} is not a whole number of degrees")
    return int(value)
