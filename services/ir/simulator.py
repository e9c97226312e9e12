"""A simulated IR/servo controller on the far side of a pseudo-terminal.

It behaves like ``deploy/arduino/ir_controller/ir_controller.ino`` (same
commands, replies, limits and boot message) but is written independently of
the host side, so a host bug is not mirrored here. The host opens the pty's
slave through pyserial exactly as it would open ``/dev/ttyUSB0``; the device
side runs in a daemon thread on the master.

``link_path`` is a symlink to the current slave (``/dev/pts/N``), like the
``/dev/serial/by-id/`` link udev makes for a USB adapter: ``unplug`` closes
the pty and removes the link (the host's reads fail with EIO, as when the
cable is pulled); ``plug`` makes a fresh pty, repoints the link and "boots"
(all state reset, ``HELLO`` sent). ``inject`` writes raw bytes (line noise,
half lines) into the stream. ``fire_pir`` is someone walking past the PIR
sensor: its output goes high for a few seconds (reported only once the host
has enabled the sensor with ``PIR <pin>``, as the firmware).

Thread safety: setters take ``_lock``; the state attributes are read by
tests while the thread runs, which is fine for these small values.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import random
import select
import threading
import time
import tty
from pathlib import Path

from services.ir import protocol as p

log = logging.getLogger(__name__)

FIRMWARE = "sim-1.1"
SERVO_SLOTS = 4  # as the firmware


class SimulatedDevice:
    def __init__(self, link_path: Path, brightness: float = 0.5, jitter: float = 0.0,
                 day_period: float = 0.0, protocol: int = p.PROTOCOL,
                 firmware: str = FIRMWARE, seed: int = 1) -> None:
        self.link_path = Path(link_path)
        self.jitter = jitter
        self.day_period = day_period  # > 0: brightness follows a day/night cosine
        self.protocol = protocol
        self.firmware = firmware
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._ramp = (time.monotonic(), brightness, brightness, 0.0)  # start, from, to, secs
        self._epoch = time.monotonic()
        self._master = -1
        self._slave = -1
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.boots = 0
        self.received: list[str] = []  # command bodies accepted, in order
        self.errors: list[str] = []  # ERR lines sent
        self.reports_sent = 0
        self.pir_level = False  # the sensor's output, kept across reboots (it is not the device)
        self._pir_release = float("inf")
        self.pir_edges = 0  # P lines sent
        self._reset_state()

    # -- the test's (or the service's) handle -----------------------------------
    @property
    def plugged(self) -> bool:
        return self._thread is not None

    def plug(self) -> None:
        """Connect the cable: a new pty, the link repointed, the device boots."""
        if self.plugged:
            return
        master, slave = os.openpty()
        tty.setraw(slave)  # a UART has no line discipline; pyserial sets raw on its side too
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._wake_r, self._wake_w = os.pipe()
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link_path.with_name(self.link_path.name + ".new")
        tmp.unlink(missing_ok=True)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link_path)
        self._reset_state()
        self.boots += 1
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ir-sim", daemon=True)
        self._thread.start()
        self._send(f"HELLO {p.FAMILY} {self.protocol} {self.firmware}")

    def unplug(self) -> None:
        """Pull the cable: the pty closes, the link disappears."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        os.write(self._wake_w, b"x")
        thread.join(5)
        self._thread = None
        self.link_path.unlink(missing_ok=True)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = self._wake_r = self._wake_w = -1

    close = unplug

    def set_brightness(self, level: float, ramp_seconds: float = 0.0) -> None:
        """Move the room brightness to ``level`` linearly over ``ramp_seconds``."""
        with self._lock:
            now = time.monotonic()
            self._ramp = (now, self._level_at(now), level, ramp_seconds)

    def brightness(self) -> float:
        with self._lock:
            return self._level_at(time.monotonic())

    def set_pir(self, active: bool) -> None:
        """The PIR sensor's output level (the firmware's debounce already passed)."""
        with self._lock:
            self.pir_level = active
            self._pir_release = float("inf")
        self._pir_changed()

    def fire_pir(self, hold_seconds: float = 2.0) -> None:
        """Something warm moves past: the output is high for ``hold_seconds``
        (an HC-SR501's hold time is set by its potentiometer, 3 s and up)."""
        with self._lock:
            self.pir_level = True
            self._pir_release = time.monotonic() + hold_seconds
        self._pir_changed()  # the device thread lets it fall (it wakes every 0.1 s)

    def inject(self, data: bytes) -> None:
        """Raw bytes into the host's receive stream (noise, half lines)."""
        with self._lock:
            self._write(data)

    # -- the device -------------------------------------------------------------
    def _reset_state(self) -> None:
        self.rate_ms = 0
        self.ir_pwm = 0
        self.auto: tuple[int, int, int] | None = None
        self.servos: dict[int, int] = {}
        self.pir_pin: int | None = None
        self._pir_reported: bool | None = None
        self._rx = bytearray()
        self._overflow = False
        self._next_report = 0.0

    def _pir_changed(self) -> None:
        with self._lock:  # the test's thread and the device's both come here
            level = self.pir_level
            if self.pir_pin is None or self._pir_reported == level:
                return
            self._pir_reported = level
            self.pir_edges += 1
        self._send(f"P {int(level)}")

    def _level_at(self, now: float) -> float:
        if self.day_period > 0:
            phase = 2 * math.pi * (now - self._epoch) / self.day_period
            return 0.5 + 0.45 * math.cos(phase)
        start, frm, to, secs = self._ramp
        if secs <= 0 or now >= start + secs:
            return to
        return frm + (to - frm) * (now - start) / secs

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            wait = 0.1
            if now >= self._pir_release:
                with self._lock:
                    self.pir_level, self._pir_release = False, float("inf")
                self._pir_changed()
            wait = max(0.0, min(wait, self._pir_release - now))
            if self.rate_ms:
                if now >= self._next_report:
                    self._report(now)
                    self._next_report = now + self.rate_ms / 1000
                wait = max(0.0, min(wait, self._next_report - now))
            ready, _, _ = select.select([self._master, self._wake_r], [], [], wait)
            if self._master in ready:
                try:
                    data = os.read(self._master, 4096)
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EIO):
                        continue
                    raise
                self._receive(data)

    def _report(self, now: float) -> None:
        with self._lock:
            level = self._level_at(now)
        if self.jitter:
            level += self._rng.uniform(-self.jitter, self.jitter)
        adc = max(0, min(p.ADC_MAX, round(level * p.ADC_MAX)))
        if self.auto is not None:  # the firmware's own hysteresis
            on_below, off_above, pwm = self.auto
            if adc < on_below:
                self.ir_pwm = pwm
            elif adc > off_above:
                self.ir_pwm = 0
        self.reports_sent += 1
        self._send(f"B {adc} {self.ir_pwm}")

    def _receive(self, data: bytes) -> None:
        # As the firmware: a fixed buffer; an overlong line is dropped up to
        # its newline and answered with one "ERR long".
        for chunk in data.split(b"\n")[:-1] if b"\n" in data else []:
            self._rx += chunk
            line, overflow = bytes(self._rx).rstrip(b"\r"), self._overflow
            self._rx.clear()
            self._overflow = False
            if overflow or len(line) > p.MAX_COMMAND:
                self._send("ERR long")
            elif line:
                self._command(line)
        rest = data.rsplit(b"\n", 1)[-1]
        if not self._overflow:
            self._rx += rest
            if len(self._rx) > p.MAX_COMMAND:
                self._rx.clear()
                self._overflow = True

    def _command(self, line: bytes) -> None:
        if len(line) > p.MAX_COMMAND:
            self._send("ERR long")
            return
        text = line.decode("ascii", "replace")
        body, star, cs = text.rpartition("*")
        if not star:
            body = text
            if body not in p.UNCHECKED_COMMANDS:
                self._send("ERR checksum")
                return
        elif cs != p.checksum(body):
            self._send("ERR checksum")
            return
        words = body.split(" ")
        verb, args = words[0], words[1:]
        if not all(a.isdigit() for a in args) and body != "AUTO OFF":
            self._send(f"ERR syntax {body}")
            return
        nums = [int(a) for a in args] if body != "AUTO OFF" else []
        if verb == "VERSION" and not args:
            self._send(f"VERSION {p.FAMILY} {self.protocol} {self.firmware}")
        elif verb == "PING" and not args:
            self._send("PONG")
        elif verb == "RATE" and len(nums) == 1:
            if nums[0] != 0 and not 20 <= nums[0] <= 60_000:
                self._send(f"ERR range {body}")
                return
            self.rate_ms = nums[0]
            self._next_report = time.monotonic()
            self._ok(body)
        elif verb == "IR" and len(nums) == 1:
            if nums[0] > p.PWM_MAX:
                self._send(f"ERR range {body}")
                return
            self.ir_pwm, self.auto = nums[0], None
            self._ok(body)
        elif body == "AUTO OFF":
            self.auto = None
            self._ok(body)
        elif verb == "AUTO" and len(nums) == 3:
            on_below, off_above, pwm = nums
            if not (on_below < off_above <= p.ADC_MAX and pwm <= p.PWM_MAX):
                self._send(f"ERR range {body}")
                return
            self.auto = (on_below, off_above, pwm)
            self._ok(body)
        elif verb == "SERVO" and len(nums) == 2:
            pin, angle = nums
            if pin > 63 or angle > p.ANGLE_MAX:
                self._send(f"ERR range {body}")
                return
            if pin not in self.servos and len(self.servos) >= SERVO_SLOTS:
                self._send(f"ERR full {body}")
                return
            self.servos[pin] = angle
            self._ok(body)
        elif verb == "PIR" and len(nums) == 1:
            if nums[0] > 63:
                self._send(f"ERR range {body}")
                return
            self.pir_pin = nums[0]
            self._ok(body)
            self._pir_reported = None
            self._pir_changed()  # the state it starts from, as the firmware
        elif verb in ("VERSION", "PING", "RATE", "IR", "AUTO", "SERVO", "PIR"):
            self._send(f"ERR syntax {body}")
        else:
            self._send(f"ERR unknown {body}")

    def _ok(self, body: str) -> None:
        self.received.append(body)
        self._send(f"OK {body}")

    def _send(self, body: str) -> None:
        if body.startswith("ERR"):
            self.errors.append(body)
        with self._lock:
            self._write(p.frame(body))

    def _write(self, data: bytes) -> None:
        """Like a UART's TX: if nobody drains the line, bytes are lost, never queued."""
        if self._master < 0:
            return
        try:
            os.write(self._master, data)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EIO, errno.EBADF):
                raise
