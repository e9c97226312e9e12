"""The line protocol as pure functions: framing, checksums, parsing, commands."""

import pytest

from services.ir import protocol as p


def test_checksum_is_the_nmea_xor_of_the_body():
    # A well-known NMEA sentence and its published checksum.
    assert p.checksum("GPGLL,5300.97914,N,00259.98174,E,125926,A") == "28"
    assert p.frame("PING") == b"PING*" + p.checksum("PING").encode() + b"\n"


def test_frame_and_unframe_round_trip_and_tolerate_crlf():
    line = p.frame("SERVO 3 90")
    assert p.unframe(line[:-1]) == "SERVO 3 90"
    assert p.unframe(line[:-1] + b"\r") == "SERVO 3 90"


@pytest.mark.parametrize("line, problem", [
    (b"B 512 0*00", "checksum mismatch"),
    (b"B 512 0", "without checksum"),
    (b"B 51", "without checksum"),  # a half line
    (b"B 512 \xff0*3F", "non-ASCII"),
    (b"B 5\x0012*3F", "control characters"),
    (b"X" * 70, "max 64"),
])
def test_unframe_refuses_lines_that_cannot_be_believed(line, problem):
    with pytest.raises(p.ProtocolError, match=problem):
        p.unframe(line)


def test_unchecked_lines_are_accepted_only_when_allowed():
    assert p.unframe(b"VERSION", require_checksum=False) == "VERSION"


def test_splitter_keeps_half_lines_until_their_newline():
    s = p.LineSplitter()
    assert s.feed(b"B 1") == []
    assert s.feed(b"2 0*xx\nOK I") == [b"B 12 0*xx"]
    assert s.feed(b"R 5\n") == [b"OK IR 5"]


def test_splitter_drops_overlong_garbage_without_growing():
    s = p.LineSplitter(max_line=16)
    assert s.feed(b"x" * 1000) == []
    assert s.feed(b"y" * 1000 + b"\nPONG*xx\n") == [b"PONG*xx"]
    assert s.overlong == 1
    s.feed(b"a" * 10)
    s.reset()
    assert s.feed(b"b\n") == [b"b"]


@pytest.mark.parametrize("body, expected", [
    ("B 1023 255", p.Report(1023, 255)),
    ("P 1", p.PirEdge(True)),
    ("P 0", p.PirEdge(False)),
    ("VERSION pisentry-ir 1 1.0.0", p.Version(1, "1.0.0")),
    ("HELLO pisentry-ir 1 1.0.0", p.Version(1, "1.0.0", boot=True)),
    ("PONG", p.Pong()),
    ("OK SERVO 3 90", p.Ack("SERVO 3 90")),
    ("ERR range SERVO 3 200", p.DeviceError("range", "SERVO 3 200")),
    ("ERR checksum", p.DeviceError("checksum", "")),
])
def test_parse_device_lines(body, expected):
    assert p.parse(body) == expected


@pytest.mark.parametrize("body", ["B 1024 0", "B 12", "B -1 0", "B 1 2 3", "VERSION other 1 x",
                                  "ERR weird", "HELLO", "OK", "banana", "P 2", "P", "P 1 1",
                                  "P x"])
def test_parse_refuses_unknown_or_out_of_range_lines(body):
    with pytest.raises(p.ProtocolError):
        p.parse(body)


def test_report_levels_are_normalised():
    r = p.Report(1023, 0)
    assert r.level == 1.0 and r.ir_level == 0.0
    assert p.Report(0, 255).ir_level == 1.0


def test_commands_validate_their_arguments():
    assert p.servo_cmd(3, 180) == "SERVO 3 180"
    assert p.ir_cmd(255) == "IR 255"
    assert p.rate_cmd(0) == "RATE 0"
    assert p.auto_cmd(200, 300, 255) == "AUTO 200 300 255"
    assert p.pir_cmd(2) == "PIR 2"
    for bad in (lambda: p.servo_cmd(3, 200), lambda: p.servo_cmd(64, 0),
                lambda: p.ir_cmd(256), lambda: p.rate_cmd(5),
                lambda: p.auto_cmd(300, 200, 255), lambda: p.frame("A*B"),
                lambda: p.pir_cmd(64), lambda: p.pir_cmd(-1)):
        with pytest.raises(ValueError):
            bad()


def test_command_keys_group_what_replaces_what():
    assert p.command_key("SERVO 3 90") == p.command_key("SERVO 3 10") == "SERVO 3"
    assert p.command_key("SERVO 4 90") != "SERVO 3"
    assert p.command_key("AUTO OFF") == p.command_key("AUTO 1 2 3") == "AUTO"
    assert p.command_key("PIR 2") == p.command_key("PIR 7") == "PIR"
