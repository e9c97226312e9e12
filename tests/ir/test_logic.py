"""Pure logic: hysteresis, servo limits, the controller's targets and retries, config."""

import random

import pytest

from common.config import ConfigError, parse_config
from common.messages import CommandError, IrLight
from services.ir import protocol as p
from services.ir.controller import MAX_TRIES, Controller
from services.ir.illuminator import IrSwitch
from services.ir.servos import ServoBank, ServoError

SERVOS = [{"name": "cover", "board_pin": 3, "angle_on": 90, "angle_off": 10},
          {"name": "pan", "board_pin": 5, "follow_arming": False, "angle_on": 90,
           "angle_off": 90},
          {"name": "tilt", "board_pin": 6, "follow_arming": False, "max_angle": 120,
           "angle_on": 90, "angle_off": 90}]


def _ir(**raw):
    return parse_config({"ir": {"servos": SERVOS, **raw}}).ir


def test_noisy_ramp_switches_ir_once_each_way():
    rng = random.Random(3)
    switch = IrSwitch(0.2, 0.3)
    ramp = [0.6 - i * 0.005 for i in range(111)] + [0.05 + i * 0.005 for i in range(111)]
    changes = [c for level in ramp
               if (c := switch.update(level + rng.uniform(-0.03, 0.03))) is not None]
    assert changes == [True, False]
    # A single threshold would flap on the same input: the test can tell.
    flappy = IrSwitch(0.249, 0.251)
    rng = random.Random(3)
    flaps = [c for level in ramp
             if (c := flappy.update(level + rng.uniform(-0.03, 0.03))) is not None]
    assert len(flaps) > 2


def test_switch_refuses_inverted_thresholds():
    with pytest.raises(ValueError):
        IrSwitch(0.3, 0.2)


def test_cover_follows_arming_pan_and_tilt_do_not():
    bank = ServoBank(_ir().servos)
    assert bank.for_arming(True) == {3: 90}
    assert bank.for_arming(False) == {3: 10}


def test_rotate_moves_pan_and_tilt():
    bank = ServoBank(_ir().servos)
    assert bank.rotate({"pan": 30, "tilt": 20}) == {5: 30, 6: 20}
    assert bank.rotate({"pan": "45"}) == {5: 45}
    assert bank.angles["pan"] == 45 and bank.angles["tilt"] == 20


@pytest.mark.parametrize("args, message", [
    ({"pan": 200}, "pan angle 200 is out of range 0..180"),
    ({"tilt": 150}, "tilt angle 150 is out of range 0..120"),
    ({"pan": -5}, "out of range"),
    ({"zoom": 3}, "no servo named 'zoom'"),
    ({"pan": "left"}, "not a number"),
    ({"pan": True}, "not a number"),
    ({"pan": 30.5}, "whole number"),
    ({}, "at least one"),
])
def test_rotate_refuses_bad_angles_with_a_clear_message(args, message):
    bank = ServoBank(_ir().servos)
    with pytest.raises(ServoError, match=message):
        bank.rotate(args)


def test_rotate_is_all_or_nothing():
    bank = ServoBank(_ir().servos)
    with pytest.raises(ServoError):
        bank.rotate({"pan": 30, "tilt": 200})
    assert "pan" not in bank.angles


def _ack_all(ctl, bodies):
    for body in bodies:
        ctl.receive(p.Ack(body))


def test_controller_sends_every_target_once_in_order_then_nothing():
    ctl = Controller(_ir(updates_per_sec=4), armed=True)
    first = ctl.outgoing(0.0)
    assert first == ["RATE 250", "AUTO OFF", "IR 0", "SERVO 3 90"]
    _ack_all(ctl, first)
    assert ctl.outgoing(5.0) == [] and ctl.pending == 0


def test_a_pir_pin_is_enabled_on_the_device_and_ready_once_acknowledged():
    assert "PIR" not in " ".join(Controller(_ir(), armed=True).outgoing(0.0))
    ctl = Controller(_ir(pir_pin=2), armed=True)
    sent = ctl.outgoing(0.0)
    assert "PIR 2" in sent and not ctl.pir_ready
    _ack_all(ctl, sent)
    assert ctl.pir_ready
    ctl.connected()  # a rebooted device watches nothing until told again
    assert not ctl.pir_ready and "PIR 2" in ctl.outgoing(1.0)


def test_controller_resends_unanswered_commands_then_gives_up():
    ctl = Controller(_ir(serial_timeout=1.0), armed=False)
    sent = ctl.outgoing(0.0)
    _ack_all(ctl, sent[:-1])  # the servo command is lost on the wire
    assert ctl.outgoing(0.5) == []
    assert ctl.outgoing(1.1) == ["SERVO 3 10"]
    assert ctl.outgoing(2.2) == ["SERVO 3 10"]
    assert ctl.outgoing(3.3) == []  # MAX_TRIES sends, then an error instead of a 4th
    assert ctl.retries == MAX_TRIES - 1
    assert ctl.take_errors() == ["device did not acknowledge 'SERVO 3 10' after 3 tries"]


def test_controller_reports_device_refusals_and_does_not_retry_them():
    ctl = Controller(_ir(), armed=True)
    ctl.outgoing(0.0)
    ctl.receive(p.DeviceError("full", "SERVO 3 90"))
    assert ctl.take_errors() == ["device refused 'SERVO 3 90': full"]
    assert "SERVO 3 90" not in ctl.outgoing(10.0)


def test_reconnect_resends_the_whole_state():
    ctl = Controller(_ir(), armed=True)
    _ack_all(ctl, ctl.outgoing(0.0))
    ctl.rotate({"pan": 30, "tilt": 20})
    _ack_all(ctl, ctl.outgoing(1.0))
    ctl.connected()  # the device rebooted
    assert ctl.outgoing(2.0) == ["RATE 500", "AUTO OFF", "IR 0", "SERVO 3 90", "SERVO 5 30",
                                 "SERVO 6 20"]


def test_service_mode_switches_ir_and_reports_the_commanded_level_until_acked():
    ctl = Controller(_ir(), armed=True)
    _ack_all(ctl, ctl.outgoing(0.0))
    ctl.receive(p.Report(800, 0))
    assert ctl.ir_level() == 0.0 and ctl.outgoing(1.0) == []
    ctl.receive(p.Report(100, 0))  # dark: below ir_on_below
    assert ctl.ir_level() == 1.0  # before the device has even heard of it
    assert ctl.outgoing(1.5) == ["IR 255"]
    ctl.receive(p.Report(100, 0))  # a report sent before the command landed
    assert ctl.ir_level() == 1.0
    ctl.receive(p.Ack("IR 255"))
    assert ctl.ir_level() == 1.0  # acked: no stale report may flip it back to 0
    ctl.receive(p.Report(100, 255))
    assert ctl.ir_level() == 1.0 and ctl.switch.switches == 1


def test_firmware_mode_hands_the_thresholds_to_the_device():
    ctl = Controller(_ir(ir_control="firmware", ir_on_below=0.2, ir_off_above=0.3,
                         ir_on_level=0.5), armed=True)
    assert ctl.outgoing(0.0)[:2] == ["RATE 500", "AUTO 205 307 128"]
    ctl.receive(p.Report(100, 128))
    assert ctl.ir_level() == pytest.approx(128 / 255)
    assert ctl.switch.switches == 0  # the service does not second-guess the firmware


def test_manual_ir_commands_override_and_auto_restores():
    ctl = Controller(_ir(), armed=True)
    _ack_all(ctl, ctl.outgoing(0.0))
    ctl.set_ir("on", 0.0)
    assert ctl.outgoing(1.0) == ["IR 255"]
    ctl.set_ir("level", 0.5)
    assert ctl.outgoing(2.0) == ["IR 128"]
    ctl.receive(p.Report(100, 128))  # dark, but the override holds
    assert ctl.targets["IR"] == "IR 128"
    ctl.set_ir("auto", 0.0)
    ctl.receive(p.Report(100, 128))
    assert ctl.targets["IR"] == "IR 255"
    # the command itself refuses nonsense, before it reaches the controller
    for mode, level in (("level", 2.0), ("blink", 0.0), ("level", float("nan"))):
        with pytest.raises(CommandError):
            IrLight(camera="c", seq=0, ts=0.0, source="t", mode=mode, level=level)


@pytest.mark.parametrize("raw, message", [
    ({"ir_on_below": 0.4, "ir_off_above": 0.3}, "ir.ir_off_above: .*above ir_on_below"),
    ({"servos": [{"name": "a", "board_pin": 3, "angle_on": 200}]}, "ir.servos.0.angle_on"),
    ({"servos": [{"name": "a", "board_pin": 3, "max_angle": 100, "angle_on": 120}]},
     "outside min_angle..max_angle"),
    ({"servos": [{"name": "a", "board_pin": 3}, {"name": "b", "board_pin": 3}]},
     "share the board_pin 3"),
    ({"baudrate": 12}, "ir.baudrate"),
    ({"on_command": "x"}, "ir.on_command: unknown key"),
])
def test_bad_ir_config_names_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"ir": raw})
