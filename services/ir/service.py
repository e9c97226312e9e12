"""The IR and servo service: a thin shell between the bus and the serial link.

Publishes ``brightness/`` on endpoint ``ir`` (each device report, at
``updates_per_sec``, and at once when the illuminator switches, so detect can
tell the IR flash from motion); while the device is missing it keeps
publishing with ``connected=False`` and its heartbeat says ``degraded``.
With ``ir.pir_pin`` set, each PIR sensor edge the device reports goes out at
once as ``pir/`` (``PirMotion``), and ``brightness/`` says ``pir=True`` while
the device watches the sensor, so detect knows the PIR's silence means no one.
Follows ``state/`` (cover servo) from notify and the ``Rotate`` and
``IrLight`` commands from notify and web. Logic lives in ``controller`` (targets, hysteresis, servos)
and ``link`` (serial state machine); this module only wires them.

Deliberately light: no OpenCV or NumPy is imported here or by anything this
imports (a test checks), so this process stays small on a Pi Zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from common.arming import ArmingStore
from common.bus import Bus, Message
from common.messages import ArmState, Brightness, IrLight, PirMotion, Rotate
from common.paths import Home
from common.worker import SetupError, Worker
from services.ir import protocol as p
from services.ir.controller import Controller
from services.ir.link import Backoff, Connected, DeviceLink, Disconnected
from services.ir.simulator import SimulatedDevice

if TYPE_CHECKING:
    from common.config import Config

log = logging.getLogger(__name__)

SIM_PORT = "sim"
SIM_DAY_SECONDS = 600.0  # the demo device's day/night cycle, so IR switching is visible
FIRST_BACKOFF = 0.25


class IrService(Worker):
    name = "ir"

    def __init__(self, config: Config, home: Home, bus: Bus | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, home, bus, clock)
        self.cfg = config.ir
        self.sim: SimulatedDevice | None = None
        self.link: DeviceLink | None = None
        self.controller: Controller | None = None
        self.refused = 0
        self.device_errors = 0
        self._published_ir: float | None = None
        self.pir_edges = 0
        self._next_offline_publish = 0.0

    def setup(self) -> None:
        cfg = self.cfg
        if not cfg.enabled:
            log.info("ir.enabled is false: idle (heartbeats only)")
            return
        port = cfg.serial_port
        if port == SIM_PORT:
            self.sim = SimulatedDevice(self.home.run_dir / "ir-sim.tty", brightness=0.6,
                                       jitter=0.01, day_period=SIM_DAY_SECONDS)
            self.sim.plug()
            port = str(self.sim.link_path)
            log.info("using the simulated IR controller at %s", port)
        elif not port.startswith("/"):
            raise SetupError(f"ir.serial_port {port!r} is neither \"sim\" nor a device path")
        armed = ArmingStore(self.home).load().armed
        self.controller = Controller(cfg, armed)
        period = 1.0 / cfg.updates_per_sec
        self.link = DeviceLink(port, cfg.baudrate, cfg.serial_timeout,
                               silence=max(3 * period, 3 * cfg.serial_timeout),
                               backoff=Backoff(FIRST_BACKOFF, cfg.reconnect_max_seconds))
        self.degraded = f"device not connected ({port})"
        self.subscribe(["notify"], [ArmState.TOPIC])
        self.subscribe(["notify", "web"], [Rotate.TOPIC, IrLight.TOPIC])

    def handle(self, msg: Message) -> None:
        if self.controller is None:
            return
        header = msg.header
        if isinstance(header, ArmState):
            self.controller.set_armed(header.armed)
        elif isinstance(header, Rotate | IrLight):
            self._control(header)

    def tick(self, now: float) -> float | None:
        link, ctl = self.link, self.controller
        if link is None or ctl is None:
            return None
        for event in link.poll(now):
            if isinstance(event, Connected):
                ctl.connected()
                self.degraded = ""
            elif isinstance(event, Disconnected):
                ctl.disconnected()
            else:
                ctl.receive(event)
                if isinstance(event, p.PirEdge):
                    self._pir(now, event)
                elif isinstance(event, p.Report):
                    # ir_level is already the newly commanded one if this report switched IR
                    self._publish(now, connected=True)
        if link.connected:
            for body in ctl.outgoing(now):
                if not link.send(body, now):
                    ctl.disconnected()
                    break
        for error in ctl.take_errors():
            self.device_errors += 1
            self._error(error)
        if not link.connected:
            self.degraded = f"device disconnected: {link.reason}"
            if now >= self._next_offline_publish:
                self._publish(now, connected=False)
        elif ctl.level is not None and ctl.ir_level() != self._published_ir:
            self._publish(now, connected=True)  # e.g. a manual switch: out at once
        # Wake at twice the report rate so a report waits at most half a period.
        return 0.5 / self.cfg.updates_per_sec

    def teardown(self) -> None:
        if self.link is not None:
            self.link.close()
        if self.sim is not None:
            self.sim.close()

    def status_counters(self) -> dict[str, Any]:
        link, ctl = self.link, self.controller
        if link is None or ctl is None:
            return {"enabled": self.cfg.enabled}
        return {
            "enabled": True,
            "connected": link.connected,
            "link": link.state,
            "link_reason": "" if link.connected else link.reason,
            "port": self.cfg.serial_port,
            "firmware": link.firmware,
            "connects": link.connects,
            "disconnects": link.disconnects,
            "noise": link.noise_lines(),
            "reports": ctl.reports,
            "retries": ctl.retries,
            "pending": ctl.pending,
            "refused": self.refused,
            "device_errors": self.device_errors,
            "brightness": -1.0 if ctl.level is None else round(ctl.level, 3),
            "ir_level": round(ctl.ir_level(), 3),
            "ir_switches": ctl.switch.switches,
            "servos": dict(ctl.servos.angles),
            "pir": ctl.pir_ready,
            "pir_edges": self.pir_edges,
        }

    # -- internals -------------------------------------------------------------------
    def _control(self, command: Rotate | IrLight) -> None:
        assert self.controller is not None
        try:
            if isinstance(command, Rotate):
                self.controller.rotate(command.angles)
            else:
                self.controller.set_ir(command.mode, command.level)
        except ValueError as exc:  # ServoError is a ValueError
            self.refused += 1
            self._error(f"refused {command} from {command.source or '?'}: {exc}")
            return
        log.info("%s from %s", command, command.source or "?")

    def _error(self, text: str) -> None:
        self.counters["errors"] += 1
        self.counters["last_error"] = text[:200]
        log.warning("%s", text)

    def _pir(self, now: float, edge: p.PirEdge) -> None:
        assert self.pub is not None
        if self.cfg.pir_pin < 0:
            return  # a device that kept an enable from an earlier session: not ours to vote
        self.pir_edges += 1
        self.pub.publish(PirMotion, ts=now, active=edge.active)
        log.debug("PIR %s", "active" if edge.active else "quiet")

    def _publish(self, now: float, connected: bool) -> None:
        assert self.pub is not None and self.controller is not None
        ctl = self.controller
        ir_level = ctl.ir_level() if connected else 0.0
        self.pub.publish(Brightness, ts=now, level=ctl.level or 0.0, ir_level=ir_level,
                         connected=connected, pir=connected and ctl.pir_ready)
        self._published_ir = ir_level if connected else None
        self._next_offline_publish = now + 1.0 / self.cfg.updates_per_sec
