"""The serial link against the simulated device on a real pseudo-terminal, via pyserial."""

import os
import time

import pytest
import serial

from services.ir import protocol as p
from services.ir.link import Backoff, Connected, DeviceLink, Disconnected
from services.ir.simulator import SimulatedDevice


@pytest.fixture
def device(home):
    dev = SimulatedDevice(home.run_dir / "dev.tty", brightness=0.5)
    dev.plug()
    yield dev
    dev.close()


def _link(dev, **kw):
    kw = {"timeout": 0.3, "silence": 1.0, "backoff": Backoff(0.05, 0.4), **kw}
    return DeviceLink(str(dev.link_path), 9600, **kw)


def _run(link, seconds, until=None):
    events, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        events += link.poll(time.monotonic())
        if until is not None and until(events):
            return events
        time.sleep(0.01)
    if until is not None:
        raise AssertionError(f"timed out; events so far: {events[-10:]}, link {link.state} "
                             f"({link.reason})")
    return events


def _reports(events):
    return [e for e in events if isinstance(e, p.Report)]


def test_handshake_reports_and_commands(device):
    link = _link(device)
    events = _run(link, 3, until=lambda ev: any(isinstance(e, Connected) for e in ev))
    assert link.connected and link.firmware == device.firmware
    assert link.send("RATE 50", time.monotonic())
    device.set_brightness(0.25)
    events = _run(link, 3, until=lambda ev: len(_reports(ev)) >= 3)
    assert p.Ack("RATE 50") in events
    assert _reports(events)[-1] == p.Report(round(0.25 * 1023), 0)
    link.send("SERVO 3 90", time.monotonic())
    link.send("SERVO 3 200", time.monotonic())
    events = _run(link, 3, until=lambda ev: any(isinstance(e, p.DeviceError) for e in ev))
    assert p.Ack("SERVO 3 90") in events
    assert p.DeviceError("range", "SERVO 3 200") in events
    assert device.servos == {3: 90}
    link.close()


def test_pir_edges_are_reported_only_once_the_sensor_is_enabled(device):
    link = _link(device)
    _run(link, 3, until=lambda ev: any(isinstance(e, Connected) for e in ev))
    device.fire_pir(0.3)  # not enabled: the firmware does not read a pin nobody named
    assert not any(isinstance(e, p.PirEdge) for e in _run(link, 0.6))
    link.send("PIR 2", time.monotonic())
    events = _run(link, 3, until=lambda ev: p.PirEdge(False) in ev)
    assert p.Ack("PIR 2") in events  # then the state it starts from
    device.fire_pir(0.3)
    events = _run(link, 3, until=lambda ev: p.PirEdge(False) in ev)
    assert [e for e in events if isinstance(e, p.PirEdge)] == [p.PirEdge(True), p.PirEdge(False)]
    link.send("PIR 64", time.monotonic())
    assert p.DeviceError("range", "PIR 64") in _run(
        link, 3, until=lambda ev: any(isinstance(e, p.DeviceError) for e in ev))
    link.close()


def test_noise_and_half_lines_are_ignored_and_counted(device):
    link = _link(device)
    _run(link, 3, until=lambda ev: any(isinstance(e, Connected) for e in ev))
    link.send("RATE 50", time.monotonic())
    _run(link, 3, until=lambda ev: len(_reports(ev)) >= 1)
    device.inject(b"\x00\xff\xfe garbage \x13\n")  # line noise
    device.inject(b"B 1023 25")  # a half line: the next report completes it into nonsense
    time.sleep(0.15)
    device.inject(b"B 1023 255*00\n")  # well formed but a wrong checksum
    device.inject(b"#" * 500)  # a burst without newlines
    device.inject(b"\n" + p.frame("B 999 0"))  # and a good line right after
    events = _run(link, 3, until=lambda ev: p.Report(999, 0) in ev)
    assert link.connected
    assert all(r.adc == round(0.5 * 1023) for r in _reports(events) if r != p.Report(999, 0))
    assert link.noise_lines() >= 4  # garbage, half line, bad checksum, the burst


def test_unplug_then_replug_reconnects_with_back_off(device):
    link = _link(device)
    _run(link, 3, until=lambda ev: any(isinstance(e, Connected) for e in ev))
    device.unplug()
    _run(link, 2, until=lambda ev: any(isinstance(e, Disconnected) for e in ev))
    assert not link.connected and link.disconnects == 1
    assert "failed" in link.reason or "silent" in link.reason
    _run(link, 1.0)  # missing for a while: attempts back off, nothing crashes
    assert "cannot open" in link.reason and link.backoff.current == 0.4
    device.plug()
    _run(link, 3, until=lambda ev: any(isinstance(e, Connected) for e in ev))
    assert link.connects == 2 and link.backoff.current == 0.05
    link.send("PING", time.monotonic())
    assert p.Pong() in _run(link, 2, until=lambda ev: p.Pong() in ev)
    link.close()


def test_a_silent_device_counts_as_gone(device):
    link = _link(device, silence=0.5)
    _run(link, 3, until=lambda ev: any(isinstance(e, Connected) for e in ev))
    # No RATE sent: the device says nothing more, like one whose TX wire came off.
    events = _run(link, 3, until=lambda ev: any(isinstance(e, Disconnected) for e in ev))
    assert "silent" in next(e for e in events if isinstance(e, Disconnected)).reason


def test_a_device_with_another_protocol_is_refused(home):
    dev = SimulatedDevice(home.run_dir / "dev.tty", protocol=2)
    dev.plug()
    try:
        link = _link(dev)
        _run(link, 1.0)
        assert not link.connected
        assert "protocol 2" in link.reason and "flash" in link.reason
    finally:
        dev.close()


def test_a_missing_port_is_retried_not_fatal(home):
    link = DeviceLink(str(home.run_dir / "nothing"), 9600, 0.3, 1.0, Backoff(0.05, 0.2))
    _run(link, 0.5)
    assert link.state == "disconnected" and "cannot open" in link.reason


def test_the_device_answers_unchecked_version_and_ping_only(device):
    port = serial.Serial(str(device.link_path), 9600, timeout=1)
    port.reset_input_buffer()
    port.write(b"PING\r\nSERVO 3 90\n" + p.frame("FLY 3") + b"X" * 60 + b"\n")
    lines = [port.readline() for _ in range(4)]
    port.close()
    assert lines == [p.frame("PONG"), p.frame("ERR checksum"), p.frame("ERR unknown FLY 3"),
                     p.frame("ERR long")]
    assert device.servos == {}


def test_the_simulator_cleans_up_its_pty(home):
    dev = SimulatedDevice(home.run_dir / "dev.tty")
    dev.plug()
    target = os.readlink(dev.link_path)
    dev.unplug()
    assert not dev.link_path.exists() and not dev.plugged
    assert target.startswith("/dev/pts/")
