"""The serial link to the microcontroller: open, handshake, read lines, reconnect.

Never blocks the worker loop: the port is opened with ``timeout=0`` and
``poll`` reads what is waiting, so heartbeats keep flowing while the device
is missing. The link is a small state machine::

    disconnected --(back-off elapsed, port opens)--> handshake
    handshake    --(VERSION/HELLO with our protocol)--> connected
    handshake    --(no answer after HANDSHAKE_TRIES x timeout)--> disconnected
    connected    --(read/write error, silence)--> disconnected

A USB adapter pulled out, a pty closed, a device that stops talking: all end
in ``disconnected`` with a reason, and the next attempt waits a back-off that
doubles up to ``max_backoff`` and resets after a good handshake. A device
that reboots (it says ``HELLO``) is reported as connected again, so the
service resends its state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from services.ir import protocol as p

log = logging.getLogger(__name__)

HANDSHAKE_TRIES = 3  # an Arduino resets when the port opens; its bootloader takes ~2 s
READ_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class Connected:
    firmware: str
    reboot: bool = False


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


LinkEvent = Connected | Disconnected | p.DeviceMessage


class Backoff:
    """Doubling delays between ``initial`` and ``maximum`` seconds."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.current = initial

    def next(self) -> float:
        delay = self.current
        self.current = min(self.maximum, self.current * 2)
        return delay

    def reset(self) -> None:
        self.current = self.initial


def open_serial(port: str, baudrate: int, write_timeout: float) -> serial.Serial:
    """The real port, non-blocking reads; ``exclusive`` so a second pisentry
    (or a stray serial monitor using flock) cannot share the device."""
    return serial.Serial(port, baudrate, timeout=0, write_timeout=write_timeout, exclusive=True)


class DeviceLink:
    def __init__(self, port: str, baudrate: int, timeout: float, silence: float,
                 backoff: Backoff, opener: Callable[[str, int, float], Any] = open_serial
                 ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.silence = silence  # connected but no line for this long: the device is gone
        self.backoff = backoff
        self.opener = opener
        self.state = "disconnected"
        self.reason = "not opened yet"
        self.firmware = ""
        self.connects = 0
        self.disconnects = 0
        self.noise = 0  # lines dropped: bad checksum, half lines, garbage
        self._serial: Any = None
        self._splitter = p.LineSplitter()
        self._next_attempt = 0.0
        self._handshake_deadline = 0.0
        self._handshake_tries = 0
        self._last_rx = 0.0
        self._logged_reason = ""

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def poll(self, now: float) -> list[LinkEvent]:
        """Advance the state machine and return what arrived."""
        if self.state == "disconnected":
            if now < self._next_attempt:
                return []
            self._open(now)
            if self.state == "disconnected":
                return []
        events: list[LinkEvent] = []
        try:
            data = self._serial.read(READ_CHUNK)
        except (serial.SerialException, OSError) as exc:
            return self._lose(now, f"read failed: {exc}")
        if data:
            self._last_rx = now
            for line in self._splitter.feed(data):
                msg = self._parse(line)
                if msg is None:
                    continue
                if isinstance(msg, p.Version):
                    event = self._version(now, msg)
                    if event is not None:
                        events.append(event)
                    if self.state == "disconnected":
                        return events
                elif self.state == "connected":
                    events.append(msg)
                # anything before the handshake is stale output of an earlier session
        if self.state == "handshake" and now >= self._handshake_deadline:
            if self._handshake_tries >= HANDSHAKE_TRIES:
                return events + self._lose(
                    now, f"no answer to VERSION after {HANDSHAKE_TRIES} tries "
                         f"(wrong baudrate {self.baudrate}, or not the pisentry firmware?)")
            self._send_version(now)
        elif self.state == "connected" and now - self._last_rx > self.silence:
            return events + self._lose(now, f"device silent for {now - self._last_rx:.1f} s")
        return events

    def send(self, body: str, now: float) -> bool:
        """Write one command; False (and the link dropped) if it cannot."""
        if self.state != "connected":
            return False
        try:
            self._serial.write(p.frame(body))
        except (serial.SerialException, OSError) as exc:  # includes SerialTimeoutException
            self._lose(now, f"write failed: {exc}")
            return False
        return True

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass
            self._serial = None
        self.state = "disconnected"

    def noise_lines(self) -> int:
        """Lines lost so far, including overlong ones the splitter dropped."""
        return self.noise + self._splitter.overlong

    # -- internals ----------------------------------------------------------------
    def _open(self, now: float) -> None:
        try:
            self._serial = self.opener(self.port, self.baudrate, self.timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._serial = None
            self._schedule(now, f"cannot open {self.port}: {exc}")
            return
        self._splitter.reset()
        self.state = "handshake"
        self._handshake_tries = 0
        self._last_rx = now
        self._send_version(now)

    def _send_version(self, now: float) -> None:
        self._handshake_tries += 1
        self._handshake_deadline = now + self.timeout
        try:
            # The newline ends any half command left in the device's buffer.
            self._serial.write(b"\n" + p.frame(p.version_cmd()))
        except (serial.SerialException, OSError) as exc:
            self._lose(now, f"write failed: {exc}")

    def _version(self, now: float, msg: p.Version) -> LinkEvent | None:
        if msg.protocol != p.PROTOCOL:
            self.backoff.current = self.backoff.maximum  # will not fix itself soon
            lost = self._lose(now, f"device speaks protocol {msg.protocol}, pisentry speaks "
                                   f"{p.PROTOCOL}: flash deploy/arduino/ir_controller")
            return lost[0] if lost else None
        if self.state == "handshake" or msg.boot:
            reboot = self.state == "connected"
            self.state = "connected"
            self.firmware = msg.firmware
            self.connects += 1
            self.backoff.reset()
            self._logged_reason = ""
            log.info("IR controller on %s: firmware %s%s", self.port, msg.firmware,
                     " (it rebooted)" if reboot else "")
            return Connected(msg.firmware, reboot)
        return None  # a late answer to a repeated VERSION

    def _parse(self, line: bytes) -> p.DeviceMessage | None:
        try:
            return p.parse(p.unframe(line))
        except p.ProtocolError as exc:
            self.noise += 1
            log.debug("ignored line from %s: %s", self.port, exc)
            return None

    def _lose(self, now: float, reason: str) -> list[LinkEvent]:
        was = self.state
        self.close()
        if was == "connected":
            self.disconnects += 1
        self._schedule(now, reason)
        return [Disconnected(reason)] if was == "connected" else []

    def _schedule(self, now: float, reason: str) -> None:
        self.state = "disconnected"
        self.reason = reason
        delay = self.backoff.next()
        self._next_attempt = now + delay
        if reason != self._logged_reason:  # one line per new problem, not one per retry
            log.warning("IR controller: %s; retrying (back-off up to %.1f s)", reason,
                        self.backoff.maximum)
            self._logged_reason = reason
