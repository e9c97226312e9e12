"""Day and night profiles through real processes: the simulated controller on
a pty, the real ir service switching the IR light, the real detect choosing
its profile. A figure too faint for the day's threshold but not for the
night's opens an event only while the IR light is on, and detect's heartbeat
says which profile is in force and why; a schedule covering now is night
without any IR, and `pisentry status` says so."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from common.bus import Bus, Subscriber
from common.config import parse_config
from common.messages import Brightness, Frame, Heartbeat, Motion
from common.paths import Home
from services.ir.simulator import SimulatedDevice
from tests.notify.conftest import wait_until
from tests.support import pisentry, pisentry_process

FPS = 15
NIGHT = {"min_pixel_delta_trigger": 8}  # the day's is 25; the figure differs by 16


def frame(i: int) -> bytes:
    # Mid-grey: the default algorithm lowers the threshold in darker scenes.
    luma = np.full((120, 160), 110, np.uint8)
    luma[::8] = 106  # some texture (the figure differs from it by 20)
    x = 20 + (i % 30) * 3  # someone faint walking to and fro
    luma[40:90, x:x + 16] = 126
    return np.vstack([luma, np.full((60, 160), 128, np.uint8)]).tobytes()


def _walk(frames: Any, watch: Subscriber, seconds: float) -> list[Any]:
    seen: list[Any] = []
    for i in range(round(seconds * FPS)):
        frames.publish(Frame, [frame(i)], ts=time.time(), width=160, height=120,
                       format="yuv420")
        seen += [m.header for m in watch.recv(1 / FPS)]
    return seen


def _profile(watch: Subscriber, name: str) -> Heartbeat:
    """detect's next heartbeat that reports profile ``name``."""
    beats = wait_until(lambda: [m.header for m in watch.recv(0.2)
                                if isinstance(m.header, Heartbeat)
                                and m.header.service == "detect" and m.header.profile == name],
                       15, f"detect in the {name} profile")
    return beats[-1]


def _starts(seen: list[Any]) -> list[Motion]:
    return [h for h in seen if isinstance(h, Motion) and h.phase == "start"]


def test_the_ir_light_switches_to_the_night_profile_and_back(home: Home) -> None:
    device = SimulatedDevice(home.run_dir / "usb.tty", brightness=0.05)  # dark: IR on
    device.plug()
    config = {"detect": {"night": NIGHT, "quiet_seconds": 1.0},
              "ir": {"serial_port": str(device.link_path), "updates_per_sec": 10,
                     "serial_timeout": 0.3}}
    bus = Bus(parse_config(config), home)
    frames = bus.publisher("frames")
    watch = bus.subscriber(["detect", "ir"], [Motion.TOPIC, Heartbeat.TOPIC, Brightness.TOPIC])
    try:
        with pisentry_process("ir", home=home, config=config), \
                pisentry_process("detect", home=home, config=config):
            beat = _profile(watch, "night")
            assert beat.profile_why == "IR on" and beat.counters["profile_switches"] == 1
            time.sleep(1.0)  # the IR switch's re-base is over
            seen = _walk(frames, watch, 3.0)
            assert _starts(seen), "the faint figure opens an event at night"
            _walk(frames, watch, 0.0)
            time.sleep(1.5)  # the event ends (quiet_seconds)

            device.set_brightness(0.9)  # morning: the ir service switches IR off
            beat = _profile(watch, "day")
            assert beat.profile_why == "IR off" and beat.profile_since > 0
            seen = [h for h in watch.recv(0.2)] + _walk(frames, watch, 1.0)
            assert not _starts(seen), "an IR switch with a profile switch opens no event"
            seen = _walk(frames, watch, 3.0)
            assert not _starts(seen), "the same figure is below the day's threshold"
    except AssertionError:
        print((home.root / "detect.out").read_text()[-3000:])
        print((home.root / "ir.out").read_text()[-1500:])
        raise
    finally:
        bus.close()
        device.close()


def test_when_the_ir_service_stops_the_night_stays_and_detect_says_it_lost_the_ir(
        home: Home) -> None:
    device = SimulatedDevice(home.run_dir / "usb.tty", brightness=0.05)  # dark: IR on
    device.plug()
    config = {"detect": {"night": NIGHT},
              "ir": {"serial_port": str(device.link_path), "updates_per_sec": 10,
                     "serial_timeout": 0.3}}
    bus = Bus(parse_config(config), home)
    watch = bus.subscriber(["detect"], [Heartbeat.TOPIC])
    try:
        with pisentry_process("detect", home=home, config=config):
            with pisentry_process("ir", home=home, config=config):
                assert _profile(watch, "night").profile_why == "IR on"
            stopped = time.time()
            beat = wait_until(lambda: [m.header for m in watch.recv(0.2)
                                       if isinstance(m.header, Heartbeat)
                                       and m.header.service == "detect"
                                       and m.header.profile_why.startswith("no IR state")],
                              15, "detect saying it has no IR state")[-1]
            assert beat.profile == "night", "a lost IR state keeps the night profile"
            heard = {time.strftime("%H:%M", time.localtime(t)) for t in (stopped - 60, stopped)}
            assert beat.profile_why.removeprefix("no IR state since ") in heard, beat
            assert beat.counters["profile_switches"] == 1
    finally:
        bus.close()
        device.close()


def test_a_schedule_covering_now_is_night_without_ir(home: Home) -> None:
    now = time.localtime()
    start = time.strftime("%H:%M", time.localtime(time.time() - 120))
    end = time.strftime("%H:%M", time.localtime(time.time() + 600))
    config = {"detect": {"night": NIGHT, "night_when": "schedule", "night_start": start,
                         "night_end": end},
              "ir": {"enabled": False}, "general": {"services": ["detect"]}}
    bus = Bus(parse_config(config), home)
    frames = bus.publisher("frames")
    watch = bus.subscriber(["detect"], [Motion.TOPIC, Heartbeat.TOPIC])
    try:
        with pisentry_process("detect", home=home, config=config):
            beat = _profile(watch, "night")
            assert beat.profile_why == f"schedule {start}-{end}", (beat, now)
            status = pisentry("status", "--config", str(home.root / "detect.toml"), home=home)
            since = time.strftime("%H:%M", time.localtime(beat.profile_since))
            words = f"night profile since {since} (schedule {start}-{end})"
            assert words in status.stdout, status.stdout
            time.sleep(0.5)
            assert _starts(_walk(frames, watch, 3.0))
    finally:
        bus.close()
