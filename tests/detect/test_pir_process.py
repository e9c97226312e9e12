"""The PIR's vote through real processes: the simulated controller on a pty,
the real ir service reading it, the real detect deciding. At night (the ir
service switched the IR light on in a dark room) an event from pixels alone
does not alert until the simulated PIR fires; with ``detect.pir = "never"``
the same pixels alert at once; with the ir service down pixels alone alert."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from common.bus import Bus, Subscriber
from common.config import parse_config
from common.messages import Brightness, Frame, Heartbeat, Motion, PirMotion
from common.paths import Home
from services.ir.simulator import SimulatedDevice
from tests.notify.conftest import wait_until
from tests.support import pisentry_process

FPS = 15


def frame(i: int, someone: bool) -> bytes:
    luma = np.full((120, 160), 40, np.uint8)
    luma[::8] = 25  # some texture, so a bright figure is not taken for a change of light
    if someone:  # walking to and fro across the garden
        x = 20 + (i % 30) * 3
        luma[40:90, x:x + 16] = 160
    return np.vstack([luma, np.full((60, 160), 128, np.uint8)]).tobytes()


def _config(device: SimulatedDevice, pir: str) -> dict[str, Any]:
    return {"detect": {"pir": pir, "pir_window_seconds": 2.0, "quiet_seconds": 10.0},
            "ir": {"serial_port": str(device.link_path), "pir_pin": 2, "updates_per_sec": 10,
                   "serial_timeout": 0.3}}


def _walk(frames: Any, watch: Subscriber, start: int, seconds: float,
          seen: list[Any]) -> int:
    """``seconds`` of someone walking, at FPS, collecting what detect and ir say."""
    for i in range(start, start + round(seconds * FPS)):
        frames.publish(Frame, [frame(i, True)], ts=time.time(), width=160, height=120,
                       format="yuv420")
        seen += [m.header for m in watch.recv(1 / FPS)]
    return start + round(seconds * FPS)


def _night_with_pir(home: Home, device: SimulatedDevice, pir: str):
    """ir and detect running, the room dark, IR on, the PIR enabled."""
    config = _config(device, pir)
    bus = Bus(parse_config(config), home)
    frames = bus.publisher("frames")
    watch = bus.subscriber(["detect", "ir"], [Motion.TOPIC, Heartbeat.TOPIC, Brightness.TOPIC,
                                             PirMotion.TOPIC])
    return config, bus, frames, watch


def _wait_ready(watch: Subscriber) -> None:
    detect = night = False
    deadline = time.monotonic() + 30
    while not (detect and night):
        assert time.monotonic() < deadline, "detect up, and ir up with IR on and the PIR enabled"
        for h in (m.header for m in watch.recv(0.2)):
            detect = detect or isinstance(h, Heartbeat) and h.service == "detect"
            night = night or isinstance(h, Brightness) and h.pir and h.ir_level > 0.5
    time.sleep(1.0)  # subscriptions settle; the IR switch's re-base is long over


def test_a_night_event_alerts_only_once_the_pir_fires(home: Home) -> None:
    device = SimulatedDevice(home.run_dir / "usb.tty", brightness=0.05)  # night
    device.plug()
    config, bus, frames, watch = _night_with_pir(home, device, "at_night")
    try:
        with pisentry_process("ir", home=home, config=config), \
                pisentry_process("detect", home=home, config=config):
            _wait_ready(watch)
            seen: list[Any] = []
            i = _walk(frames, watch, 0, 3.0, seen)
            motions = [h for h in seen if isinstance(h, Motion)]
            assert motions and motions[0].phase == "start", seen[-5:]
            assert not any(m.alert for m in motions)  # an insect, as far as anyone knows
            fired = time.time()
            device.fire_pir(1.0)
            _walk(frames, watch, i, 2.0, seen)
            assert any(isinstance(h, PirMotion) and h.active for h in seen)
            alerting = [h for h in seen if isinstance(h, Motion) and h.alert]
            assert alerting, [h for h in seen if isinstance(h, Motion)]
            first = alerting[0]
            assert first.phase == "update" and first.event_id == motions[0].event_id
            assert first.ts >= fired - 0.2
            hb = wait_until(lambda: [m.header for m in watch.recv(0.2)
                                     if isinstance(m.header, Heartbeat)
                                     and m.header.service == "detect"], 10, "a heartbeat")
            assert hb[-1].counters["pir_triggers"] >= 1 and hb[-1].counters["pir_voted"] >= 1
    finally:
        bus.close()
        device.close()


def test_with_pir_never_the_same_night_event_alerts_at_once(home: Home) -> None:
    device = SimulatedDevice(home.run_dir / "usb.tty", brightness=0.05)
    device.plug()
    config, bus, frames, watch = _night_with_pir(home, device, "never")
    try:
        with pisentry_process("ir", home=home, config=config), \
                pisentry_process("detect", home=home, config=config):
            _wait_ready(watch)
            seen: list[Any] = []
            _walk(frames, watch, 0, 3.0, seen)
            motions = [h for h in seen if isinstance(h, Motion)]
            assert motions and motions[0].phase == "start" and motions[0].alert, motions
            assert device.pir_edges == 1  # only the state on enabling: nobody fired it
    finally:
        bus.close()
        device.close()


def test_with_the_ir_service_down_pixels_alone_alert(home: Home) -> None:
    device = SimulatedDevice(home.run_dir / "usb.tty")  # never plugged: no ir either
    config, bus, frames, watch = _night_with_pir(home, device, "always")
    try:
        with pisentry_process("detect", home=home, config=config):
            wait_until(lambda: any(isinstance(m.header, Heartbeat) for m in watch.recv(0.2)),
                       30, "detect to start")
            time.sleep(3.5)  # longer than the PIR's staleness (3 s): it cannot vote
            seen: list[Any] = []
            _walk(frames, watch, 0, 3.0, seen)
            motions = [h for h in seen if isinstance(h, Motion)]
            assert motions and motions[0].alert, motions
        assert "no PIR sensor reachable" in (home.root / "detect.out").read_text()
    finally:
        bus.close()
