"""When the infrared illuminator is on: a threshold with hysteresis.

A photoresistor near the switching point reads a little differently every
time, and the IR LEDs themselves light the room a bit; a single threshold
would flap on and off at dusk. Two thresholds (on below one, off above a
higher one) switch exactly once each way on a slow ramp.
"""

from __future__ import annotations


class IrSwitch:
    """Pure state machine; ``update`` returns the new state only when it changes."""

    def __init__(self, on_below: float, off_above: float) -> None:
        if not 0.0 <= on_below < off_above <= 1.0:
            raise ValueError(f"need 0 <= on_below ({on_below}) < off_above ({off_above}) <= 1")
        self.on_below = on_below
        self.off_above = off_above
        self.on = False
        self.switches = 0

    def update(self, level: float) -> bool | None:
        if not self.on and level < self.on_below:
            self.on = True
        elif self.on and level > self.off_above:
            self.on = False
        else:
            return None
        self.switches += 1
        return self.on
