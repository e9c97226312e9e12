"""The real IR service (in a thread) against the simulated device on a real pty,
with commands and results travelling over real ZMQ sockets."""

import itertools
import threading
import time
from contextlib import contextmanager

import msgpack
import pytest
import zmq

from common.arming import Arming, ArmingStore
from common.bus import Bus
from common.config import parse_config
from common.messages import (
    PROTOCOL_VERSION,
    ArmState,
    Brightness,
    Forget,
    Heartbeat,
    IrLight,
    Rotate,
)
from services.ir.service import IrService
from services.ir.simulator import SimulatedDevice

SERVOS = [{"name": "cover", "board_pin": 3, "angle_on": 90, "angle_off": 10},
          {"name": "pan", "board_pin": 5, "follow_arming": False, "angle_on": 90,
           "angle_off": 90},
          {"name": "tilt", "board_pin": 6, "follow_arming": False, "angle_on": 90,
           "angle_off": 90}]


class Harness:
    def __init__(self, home, device, **ir):
        raw = {"ir": {"serial_port": str(device.link_path), "updates_per_sec": 20,
                      "serial_timeout": 0.3, "reconnect_max_seconds": 0.5,
                      "servos": SERVOS, **ir}}
        self.config = parse_config(raw)
        self.device = device
        self.bus = Bus(self.config, home, context=zmq.Context())
        self.notify = self.bus.publisher("notify")  # stand-ins for the notify and web services
        self.web = self.bus.publisher("web")
        self.sub = self.bus.subscriber(["ir"], [Brightness.TOPIC, Heartbeat.TOPIC])
        self.service = IrService(self.config, home)
        self.thread = threading.Thread(target=self.service.run, daemon=True)
        self.brightness: list[Brightness] = []
        self.heartbeats: list[Heartbeat] = []

    def pump(self, seconds=0.05):
        for msg in self.sub.recv(seconds):
            (self.brightness if isinstance(msg.header, Brightness) else self.heartbeats).append(
                msg.header)

    def until(self, predicate, timeout=5.0, what="condition", resend=None):
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while time.monotonic() < deadline:
            if resend is not None and time.monotonic() >= next_send:
                resend()  # a SUB that connected a moment ago misses earlier messages
                next_send = time.monotonic() + 0.5
            self.pump()
            if predicate():
                return
        hb = self.heartbeats[-1].counters if self.heartbeats else None
        raise AssertionError(f"timed out waiting for {what}; last heartbeat {hb}")

    def control(self, cls, pub=None, **fields):
        (pub or self.web).publish(cls, ts=time.time(), source="test", **fields)

    def last_hb(self):
        return self.heartbeats[-1].counters if self.heartbeats else {}

    def status(self):
        return self.heartbeats[-1].status if self.heartbeats else ""


@contextmanager
def running(home, device=None, **ir):
    device = device or SimulatedDevice(home.run_dir / "dev.tty", brightness=0.6)
    if not device.plugged:
        device.plug()
    h = Harness(home, device, **ir)
    h.thread.start()
    try:
        h.until(lambda: h.brightness and h.brightness[-1].connected, what="first brightness")
        yield h
    finally:
        h.service.request_stop()
        h.thread.join(5)
        assert not h.thread.is_alive()
        h.bus.close()
        device.close()


def test_brightness_flows_to_the_bus(home):
    with running(home) as h:
        h.device.set_brightness(0.35)
        h.until(lambda: abs(h.brightness[-1].level - 0.35) < 0.002, what="level 0.35")
        start = len(h.brightness)
        time.sleep(1.0)
        h.pump()
        rate = len(h.brightness) - start
        assert 14 <= rate <= 26, rate  # updates_per_sec = 20
        assert all(b.connected and b.ir_level == 0.0 for b in h.brightness[start:])


def test_a_brightness_ramp_switches_ir_on_and_off_once_each(home):
    device = SimulatedDevice(home.run_dir / "dev.tty", brightness=0.6, jitter=0.02)
    with running(home, device) as h:
        device.set_brightness(0.05, ramp_seconds=1.5)
        h.until(lambda: device.ir_pwm == 255, what="IR on")
        device.set_brightness(0.6, ramp_seconds=1.5)
        h.until(lambda: device.ir_pwm == 0 and h.brightness[-1].level > 0.55, what="IR off")
        time.sleep(0.3)
        h.pump()
        ir = [b.ir_level for b in h.brightness]
        switches = [(a, b) for a, b in itertools.pairwise(ir) if a != b]
        trace = [(round(b.level, 3), b.ir_level) for b in h.brightness]
        assert switches == [(0.0, 1.0), (1.0, 0.0)], trace
        assert device.received.count("IR 255") == 1
        # detect hears of the switch in the very message of the dark report that caused it,
        # before the device has acknowledged it
        on = ir.index(1.0)
        assert h.brightness[on].level < 0.2 and h.brightness[on - 1].level >= 0.2 - 0.021
        h.until(lambda: h.last_hb().get("ir_switches") == 2, what="heartbeat counts 2 switches")


def test_arming_moves_the_cover_and_the_start_state_comes_from_the_store(home):
    ArmingStore(home).save(Arming(armed=False))
    with running(home) as h:
        h.until(lambda: h.device.servos.get(3) == 10, what="cover at angle_off at start")
        arm = lambda: h.notify.publish(ArmState, ts=time.time(), armed=True, changed_by="t")
        h.until(lambda: h.device.servos.get(3) == 90, resend=arm, what="cover at angle_on")
        disarm = lambda: h.notify.publish(ArmState, ts=time.time(), armed=False, changed_by="t")
        h.until(lambda: h.device.servos.get(3) == 10, resend=disarm, what="cover closed")
        assert 5 not in h.device.servos  # pan/tilt do not follow arming


def test_rotate_moves_pan_and_tilt_and_out_of_range_is_refused(home):
    with running(home) as h:
        rotate = lambda: h.control(Rotate, pub=h.notify, angles={"pan": 30, "tilt": 20})
        h.until(lambda: h.device.servos.get(5) == 30 and h.device.servos.get(6) == 20,
                resend=rotate, what="pan 30 tilt 20")
        h.control(Rotate, angles={"pan": 200})
        h.until(lambda: h.last_hb().get("refused", 0) >= 1,
                what="refusal in the heartbeat")
        hb = h.last_hb()
        assert "pan angle 200 is out of range 0..180" in hb["last_error"]
        assert hb["errors"] >= 1
        time.sleep(0.2)
        assert h.device.servos[5] == 30 and "SERVO 5 200" not in h.device.received
        # commands for other services are not even received; a malformed
        # rotate is counted as malformed and dropped, never acted on
        h.control(Forget, path="/r/x.mp4")
        bad = {"v": PROTOCOL_VERSION, "camera": "cam1", "seq": 0, "ts": time.time(),
               "source": "test", "angles": {"pan": "thirty"}}
        h.web._socket.send_multipart([Rotate.TOPIC, msgpack.packb(bad)])
        h.until(lambda: h.last_hb().get("malformed", 0) >= 1, what="malformed rotate counted")
        assert h.last_hb()["refused"] == hb["refused"] and h.device.servos[5] == 30


def test_ir_control_commands(home):
    with running(home) as h:
        h.until(lambda: h.device.ir_pwm == 255, resend=lambda: h.control(IrLight, mode="on", level=0.0),
                what="IR forced on")
        h.until(lambda: h.brightness[-1].ir_level == 1.0, what="ir_level published")
        h.control(IrLight, mode="level", level=0.25)
        h.until(lambda: abs(h.brightness[-1].ir_level - 0.25) < 0.01, what="a fixed level")
        h.until(lambda: h.device.ir_pwm == 0, resend=lambda: h.control(IrLight, mode="auto", level=0.0),
                what="back to automatic (bright room: off)")


def test_unplug_and_replug(home):
    with running(home) as h:
        h.until(lambda: h.device.servos.get(3) == 90, what="cover open (armed by default)")
        h.device.unplug()
        h.until(lambda: not h.brightness[-1].connected, what="brightness says disconnected")
        h.until(lambda: h.status() == "degraded"
                and h.last_hb()["connected"] is False, what="heartbeat says disconnected")
        assert "device disconnected" in h.last_hb()["degraded"]
        assert h.thread.is_alive()
        time.sleep(1.5)  # missing for a while: back-off attempts, still publishing offline
        h.pump()
        assert sum(not b.connected for b in h.brightness) >= 10
        h.device.set_brightness(0.42)
        h.device.plug()  # a rebooted device: knows nothing
        h.until(lambda: h.brightness[-1].connected and abs(h.brightness[-1].level - 0.42) < 0.01,
                what="brightness back")
        h.until(lambda: h.device.servos.get(3) == 90, what="cover state restored")
        h.until(lambda: h.status() == "ok" and h.last_hb()["connects"] == 2,
                what="heartbeat ok again")
        assert h.last_hb()["disconnects"] == 1


def test_line_noise_does_not_reach_the_bus(home):
    with running(home) as h:
        for _ in range(5):
            h.device.inject(b"B 1023 2")  # half lines, completed by the next real report
            time.sleep(0.06)
            h.device.inject(b"\xff\x00B 1023 255*99\n#@!\n")
        time.sleep(0.3)
        h.until(lambda: h.last_hb().get("noise", 0) >= 10, what="noise counted")
        assert h.status() == "ok"
        bad = [b for b in h.brightness
               if b.connected and (abs(b.level - 0.6) >= 0.01 or b.ir_level)]
        assert not bad, bad


def test_disabled_service_idles(home):
    config = parse_config({"ir": {"enabled": False}})
    service = IrService(config, home)
    bus = Bus(config, home, context=zmq.Context())
    sub = bus.subscriber(["ir"], [Brightness.TOPIC, Heartbeat.TOPIC])
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    got = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not any(isinstance(m.header, Heartbeat) for m in got):
        got += sub.recv(0.1)
    service.request_stop()
    thread.join(5)
    bus.close()
    beats = [m.header for m in got if isinstance(m.header, Heartbeat)]
    assert beats, "no heartbeat from a disabled ir service"
    assert all(b.counters["enabled"] is False for b in beats)
    assert not any(isinstance(m.header, Brightness) for m in got)


def test_setup_refuses_a_nonsense_port(home):
    config = parse_config({"ir": {"serial_port": "COM3"}})
    assert IrService(config, home).run() == 2


@pytest.fixture(autouse=True)
def _short(request):
    start = time.monotonic()
    yield
    assert time.monotonic() - start < 30, "an ir service test took too long"
