"""The line protocol between pisentry and the IR/servo microcontroller.

Pure functions and small value types, no I/O; ``docs/serial-protocol.md`` is
the reference and ``deploy/arduino/ir_controller/ir_controller.ino`` the other
end. In short: ASCII lines ``BODY*CS\\n`` where ``CS`` is the NMEA-style XOR of
the body's bytes in two upper-case hex digits. A serial line picks up noise
(a loose wire, a servo's current spike, an Arduino rebooting mid-line), so a
line is only believed when it is complete and its checksum matches; anything
else is counted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL = 1  # bumped only for changes an older peer would misread
FAMILY = "pisentry-ir"
MAX_LINE = 64  # bytes, newline excluded; longer input is noise by definition
MAX_COMMAND = 40  # the firmware's receive buffer (an ATtiny85 has 512 bytes of RAM)

ADC_MAX = 1023  # 10-bit analog read of the photoresistor divider
PWM_MAX = 255  # 8-bit PWM of the IR LED driver
ANGLE_MAX = 180

# Commands the device accepts without a checksum: read-only, so a person can
# type them into a serial monitor and a corrupted one can do no harm.
UNCHECKED_COMMANDS = ("VERSION", "PING")

ERROR_CODES = ("checksum", "syntax", "unknown", "range", "full", "long")


class ProtocolError(ValueError):
    """A line that cannot be believed (noise, half line, bad checksum, unknown form)."""


def checksum(body: str) -> str:
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return f"{value:02X}"


def frame(body: str) -> bytes:
    """``body`` as one line on the wire, checksum and newline added."""
    if "*" in body or "\n" in body or "\r" in body:
        raise ValueError(f"line body may not contain '*', CR or LF: {body!r}")
    return f"{body}*{checksum(body)}\n".encode("ascii")


def unframe(line: bytes, require_checksum: bool = True) -> str:
    """The body of one received line (newline already removed), or
    ``ProtocolError``. A trailing CR is tolerated (serial monitors send CRLF)."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > MAX_LINE:
        raise ProtocolError(f"line of {len(line)} bytes (max {MAX_LINE})")
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("non-ASCII bytes in line") from None
    if not text.isprintable():
        raise ProtocolError("control characters in line")
    body, star, cs = text.rpartition("*")
    if not star:
        if require_checksum:
            raise ProtocolError("line without checksum")
        return text
    if len(cs) != 2 or cs != checksum(body):
        raise ProtocolError(f"checksum mismatch ({cs!r}, want {checksum(body)})")
    return body


class LineSplitter:
    """Cuts a byte stream into complete lines.

    Bytes after the last newline wait for the rest of their line. A line that
    grows past ``MAX_LINE`` is dropped whole (up to its newline), so a stream
    of garbage without newlines cannot grow memory.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._partial = bytearray()
        self._discarding = False
        self.overlong = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            chunk = data[start:end]
            if self._discarding:
                self._discarding = False
            elif len(self._partial) + len(chunk) > self.max_line:
                self.overlong += 1
            else:
                lines.append(bytes(self._partial + chunk))
            self._partial.clear()
            start = end + 1
        rest = data[start:]
        if not self._discarding:
            if len(self._partial) + len(rest) > self.max_line:
                self._partial.clear()
                self._discarding = True
                self.overlong += 1
            else:
                self._partial += rest
        return lines

    def reset(self) -> None:
        """Forget a half line (after a reconnect it belongs to a dead stream)."""
        self._partial.clear()
        self._discarding = False


# -- what the device says --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Report:
    """``B <adc> <pwm>``: photoresistor reading and current IR output."""

    adc: int
    pwm: int

    @property
    def level(self) -> float:
        return self.adc / ADC_MAX

    @property
    def ir_level(self) -> float:
        return self.pwm / PWM_MAX


@dataclass(frozen=True, slots=True)
class PirEdge:
    """``P <state>``: the PIR sensor's output changed (debounced by the
    firmware); ``active`` True on the rising edge (something warm moved)."""

    active: bool


@dataclass(frozen=True, slots=True)
class Version:
    """``VERSION``/``HELLO pisentry-ir <protocol> <firmware>``; ``boot`` is True
    for HELLO, which the device sends when it (re)starts."""

    protocol: int
    firmware: str
    boot: bool = False


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class Ack:
    """``OK <command>``: the command, as the device understood it."""

    command: str


@dataclass(frozen=True, slots=True)
class DeviceError:
    """``ERR <code> [<command>]``: the device refused a line."""

    code: str
    command: str = ""


DeviceMessage = Report | PirEdge | Version | Pong | Ack | DeviceError


def _int(text: str, low: int, high: int, what: str) -> int:
    if not text.isdigit():
        raise ProtocolError(f"{what} {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ProtocolError(f"{what} {value} not in {low}..{high}")
    return value


def parse(body: str) -> DeviceMessage:
    """One line body from the device, or ``ProtocolError``."""
    words = body.split(" ")
    verb = words[0]
    if verb == "B" and len(words) == 3:
        return Report(_int(words[1], 0, ADC_MAX, "brightness"), _int(words[2], 0, PWM_MAX, "ir"))
    if verb == "P" and len(words) == 2:
        return PirEdge(_int(words[1], 0, 1, "pir") == 1)
    if verb in ("VERSION", "HELLO") and len(words) == 4 and words[1] == FAMILY:
        return Version(_int(words[2], 0, 999, "protocol"), words[3], boot=verb == "HELLO")
    if verb == "PONG" and len(words) == 1:
        return Pong()
    if verb == "OK" and len(words) >= 2:
        return Ack(" ".join(words[1:]))
    if verb == "ERR" and len(words) >= 2 and words[1] in ERROR_CODES:
        return DeviceError(words[1], " ".join(words[2:]))
    raise ProtocolError(f"unknown line {body[:24]!r}")


# -- what the host says ------------------------------------------------------------

def command_key(command: str) -> str:
    """What a command sets, so a newer one replaces an older one: ``IR``,
    ``AUTO``, ``RATE``, ``PIR`` or ``SERVO <pin>``."""
    words = command.split(" ")
    if words[0] == "SERVO" and len(words) >= 2:
        return f"SERVO {words[1]}"
    return words[0]


def version_cmd() -> str:
    return "VERSION"


def ping_cmd() -> str:
    return "PING"


def rate_cmd(ms: int) -> str:
    """Brightness report period; 0 stops the reports."""
    if not (ms == 0 or 20 <= ms <= 60_000):
        raise ValueError(f"report period {ms} ms not 0 or 20..60000")
    return f"RATE {ms}"


def ir_cmd(pwm: int) -> str:
    """Fixed IR output (also ends the firmware's automatic mode)."""
    if not 0 <= pwm <= PWM_MAX:
        raise ValueError(f"IR level {pwm} not in 0..{PWM_MAX}")
    return f"IR {pwm}"


def auto_cmd(on_below: int, off_above: int, pwm: int) -> str:
    """Let the firmware switch IR itself: ``pwm`` below ``on_below``, off
    above ``off_above`` (raw ADC units)."""
    if not 0 <= on_below < off_above <= ADC_MAX:
        raise ValueError(f"need 0 <= on_below ({on_below}) < off_above ({off_above}) <= "
                         f"{ADC_MAX}")
    if not 0 <= pwm <= PWM_MAX:
        raise ValueError(f"IR level {pwm} not in 0..{PWM_MAX}")
    return f"AUTO {on_below} {off_above} {pwm}"


def auto_off_cmd() -> str:
    return "AUTO OFF"


def servo_cmd(pin: int, angle: int) -> str:
    if not 0 <= pin <= 63:
        raise ValueError(f"servo pin {pin} not in 0..63")
    if not 0 <= angle <= ANGLE_MAX:
        raise ValueError(f"servo angle {angle} not in 0..{ANGLE_MAX}")
    return f"SERVO {pin} {angle}"


def pir_cmd(pin: int) -> str:
    """Watch the PIR sensor's output on board pin ``pin`` and report its edges."""
    if not 0 <= pin <= 63:
        raise ValueError(f"PIR pin {pin} not in 0..63")
    return f"PIR {pin}"


def level_to_pwm(level: float) -> int:
    return max(0, min(PWM_MAX, round(level * PWM_MAX)))


def level_to_adc(level: float) -> int:
    return max(0, min(ADC_MAX, round(level * ADC_MAX)))
