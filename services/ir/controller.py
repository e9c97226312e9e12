"""What the device should be doing, and what it has confirmed.

Pure logic between the bus and the serial link (no sockets, no serial port):
the service feeds it arming changes, control commands and device messages,
and asks it which command lines to send. Every setting is a *target* keyed by
what it sets (``RATE``, ``AUTO``, ``IR``, ``PIR``, ``SERVO <pin>``); a target is sent
until the device acknowledges it, resent after ``timeout`` (a line lost to
noise) up to ``MAX_TRIES`` times, and sent again in full after a reconnect,
because a re-plugged microcontroller has rebooted and forgotten everything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.ir import protocol as p
from services.ir.illuminator import IrSwitch
from services.ir.servos import ServoBank

if TYPE_CHECKING:
    from common.config import IrConfig

log = logging.getLogger(__name__)

MAX_TRIES = 3


class CommandError(ValueError):
    """A control command refused (bad arguments)."""


@dataclass(slots=True)
class _Pending:
    body: str
    sent_at: float
    tries: int


class Controller:
    def __init__(self, cfg: IrConfig, armed: bool, timeout: float | None = None) -> None:
        self.cfg = cfg
        self.timeout = cfg.serial_timeout if timeout is None else timeout
        self.switch = IrSwitch(cfg.ir_on_below, cfg.ir_off_above)
        self.servos = ServoBank(cfg.servos)
        self.override: float | None = None  # manual IR level from a control command
        self.targets: dict[str, str] = {}
        self._acked: dict[str, str] = {}
        self._pending: dict[str, _Pending] = {}
        self._given_up: dict[str, str] = {}
        self.errors: list[str] = []  # device refusals and timeouts, for the service to report
        self.level: float | None = None  # last room brightness, None before the first report
        self.reported_pwm = 0
        self.reports = 0
        self.retries = 0
        self.targets["RATE"] = p.rate_cmd(max(20, round(1000 / cfg.updates_per_sec)))
        self.targets["AUTO"] = p.auto_off_cmd()  # keeps RATE, AUTO, IR, servos in this order
        self._apply_ir()
        if cfg.pir_pin >= 0:
            self.targets["PIR"] = p.pir_cmd(cfg.pir_pin)
        self.set_armed(armed)

    # -- inputs -----------------------------------------------------------------
    def set_armed(self, armed: bool) -> None:
        self._set_servos(self.servos.for_arming(armed))

    def rotate(self, angles: dict[str, int]) -> None:
        """Raises ``ServoError`` (a ValueError) naming the servo and its limits."""
        self._set_servos(self.servos.rotate(angles))

    def set_ir(self, mode: str, level: float) -> None:
        """``mode`` on, off, auto, or level (then ``level`` 0..1), as the
        ``IrLight`` command checked them."""
        if mode == "level":
            self.override = float(level)
        elif mode == "on":
            self.override = self.cfg.ir_on_level
        elif mode == "off":
            self.override = 0.0
        elif mode == "auto":
            self.override = None
        else:
            raise CommandError(f"ir mode {mode!r} is not on, off or auto")
        self._apply_ir()

    def receive(self, msg: p.DeviceMessage) -> None:
        if isinstance(msg, p.Report):
            self.reports += 1
            self.level = msg.level
            self.reported_pwm = msg.pwm
            if (self.override is None and self.cfg.ir_control == "service"
                    and self.switch.update(msg.level) is not None):
                log.info("room brightness %.2f: IR %s", msg.level,
                         "on" if self.switch.on else "off")
                self._apply_ir()
        elif isinstance(msg, p.Ack):
            key = p.command_key(msg.command)
            self._acked[key] = msg.command
            if key == "IR":  # applied now; the last report predates it
                self.reported_pwm = int(msg.command.split(" ")[1])
            pending = self._pending.get(key)
            if pending is not None and pending.body == msg.command:
                del self._pending[key]
        elif isinstance(msg, p.DeviceError):
            if not msg.command:  # a garbled line: the resend after timeout covers it
                return
            key = p.command_key(msg.command)
            pending = self._pending.get(key)
            if pending is not None and pending.body == msg.command:
                del self._pending[key]
                self._given_up[key] = msg.command
            self.errors.append(f"device refused {msg.command!r}: {msg.code}")

    def connected(self) -> None:
        """A (re)started device knows nothing: send every target again."""
        self._acked.clear()
        self._pending.clear()
        self._given_up.clear()
        self.reported_pwm = 0

    def disconnected(self) -> None:
        self._pending.clear()

    # -- outputs ------------------------------------------------------------------
    def outgoing(self, now: float) -> list[str]:
        """Command lines due now: new targets, and retries of unanswered ones."""
        due: list[str] = []
        for key, body in self.targets.items():
            if self._acked.get(key) == body or self._given_up.get(key) == body:
                continue
            pending = self._pending.get(key)
            if pending is not None and pending.body == body:
                if now - pending.sent_at < self.timeout:
                    continue
                if pending.tries >= MAX_TRIES:
                    del self._pending[key]
                    self._given_up[key] = body
                    self.errors.append(f"device did not acknowledge {body!r} "
                                       f"after {MAX_TRIES} tries")
                    continue
                pending.tries += 1
                pending.sent_at = now
                self.retries += 1
            else:
                self._pending[key] = _Pending(body, now, 1)
            due.append(body)
        return due

    def ir_level(self) -> float:
        """The illuminator's output 0..1: the level just commanded while the
        device has not confirmed it (so detect hears of a switch before the
        light changes), else what the device reports."""
        target = self.targets.get("IR")
        if target is not None and self._acked.get("IR") != target:
            return int(target.split(" ")[1]) / p.PWM_MAX
        return self.reported_pwm / p.PWM_MAX

    @property
    def pir_ready(self) -> bool:
        """The device confirmed it watches the PIR sensor (so no edge means no one)."""
        target = self.targets.get("PIR")
        return target is not None and self._acked.get("PIR") == target

    def take_errors(self) -> list[str]:
        errors, self.errors = self.errors, []
        return errors

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- internals ------------------------------------------------------------------
    def _apply_ir(self) -> None:
        cfg = self.cfg
        if self.override is None and cfg.ir_control == "firmware":
            self.targets["AUTO"] = p.auto_cmd(p.level_to_adc(cfg.ir_on_below),
                                              p.level_to_adc(cfg.ir_off_above),
                                              p.level_to_pwm(cfg.ir_on_level))
            self.targets.pop("IR", None)
            return
        level = self.override if self.override is not None else (
            cfg.ir_on_level if self.switch.on else 0.0)
        self.targets["AUTO"] = p.auto_off_cmd()
        self.targets["IR"] = p.ir_cmd(p.level_to_pwm(level))

    def _set_servos(self, targets: dict[int, int]) -> None:
        for pin, angle in targets.items():
            self.targets[f"SERVO {pin}"] = p.servo_cmd(pin, angle)
