"""The one message contract of the pisentry bus.

Wire layout (ZeroMQ multipart, one message)::

    frame 0   topic    ASCII, ends with "/" so no topic is a prefix of another
    frame 1   header   msgpack map: {"v": PROTOCOL_VERSION, "camera": str,
                        "seq": int, "ts": float, ...fields of the header class}
    frame 2+  payload  raw bytes (pixels, an h264 access unit, a JPEG), sent
                        zero-copy; how many and what they mean is fixed per topic

``seq`` counts messages per (producer, topic), from 0 at process start; a
consumer that sees it jump counts a gap, and one that sees it go back knows the
producer restarted. ``ts`` is the capture time (``time.time()`` seconds) of the
frame the message is about, so latency can be measured end to end.

Each header is a frozen dataclass below, registered against its topic in
``TOPICS``. ``encode`` and ``decode`` are the only way headers cross the wire:
``decode`` raises ``MessageError`` (never anything else) for garbage, an
unknown topic, another protocol version, a missing field or a field of the
wrong type, so a worker can count and drop it.

Topics and payloads:

======================  ================  =====================================
topic                   header            payload
======================  ================  =====================================
``frame/lores/``        ``Frame``         pixels for detection (gray or yuv420)
``frame/live/``         ``Frame``         the live view: pixels (bgr24) or the
                                          camera's own JPEG (jpeg)
``h264/``               ``VideoPacket``   one h264 access unit, Annex-B
``videosupply/``        ``VideoSupply``   none
``motion/``             ``Motion``        none
``openevent/``          ``OpenEvent``     none
``snapshot/``           ``Snapshot``      one JPEG
``recording/``          ``Recording``     none
``brightness/``         ``Brightness``    none
``pir/``                ``PirMotion``     none
``control/<command>/``  ``Arm``, ``Mute``  none; one topic and class per command
                        ... (``Command``)
``state/``              ``ArmState``      none
``heartbeat/``          ``Heartbeat``     none
``overlay/``            ``MotionOverlay`` the foreground, one bit a pixel
======================  ================  =====================================
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

PROTOCOL_VERSION = 1


class MessageError(ValueError):
    """A bus message that cannot be used; ``kind`` says why, for counting."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Header:
    """Fields every message carries."""

    TOPIC: ClassVar[bytes] = b""
    camera: str
    seq: int
    ts: float


@dataclass(frozen=True, slots=True)
class Frame(Header):
    """Raw pixels, C-contiguous: ``format`` is ``gray`` (h x w), ``bgr24``
    (h x w x 3) or ``yuv420`` (I420 planes, h*3/2 x w)."""

    TOPIC: ClassVar[bytes] = b"frame/lores/"
    width: int
    height: int
    format: str
    # Camera frames capture did not send since the last one (capture.lores_fps
    # below the camera's rate, a JPEG it could not decode): detection's
    # constants are per camera frame, so it counts this one as skipped + 1.
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class LiveFrame(Frame):
    """A live-view frame: ``format`` ``bgr24`` as a ``Frame``, or ``jpeg``
    (one part, the JPEG of a camera that sends JPEGs, forwarded undecoded;
    ``width`` and ``height`` are its size)."""

    TOPIC: ClassVar[bytes] = b"frame/live/"


@dataclass(frozen=True, slots=True)
class VideoPacket(Header):
    """One h264 access unit. ``pts`` is the capture time in microseconds on
    the producer's monotonic clock; SPS/PPS precede every keyframe.

    ``replay``: a frame captured before the latest subscription, sent again
    from capture's pre-roll when someone subscribed (see ``VideoSupply``).
    A replay starts on a keyframe, and the first frame after it is a
    keyframe (but from the Pi camera's own encoder, which goes on in the GOP
    the replay ends in): a subscriber that was already there (or wants only
    live video) drops replayed packets and goes on without a hole."""

    TOPIC: ClassVar[bytes] = b"h264/"
    pts: int
    keyframe: bool
    width: int
    height: int
    fps: float
    replay: bool = False


@dataclass(frozen=True, slots=True)
class VideoSupply(Header):
    """How capture makes h264, every second on the video endpoint.

    ``preroll`` > 0: capture keeps that many seconds of pre-roll: a camera
    that sends JPEGs as its own JPEGs (h264 encoded only while someone
    subscribes to ``h264/``), any other as h264 GOPs (the encoder always
    runs); each new subscription first gets the pre-roll as ``replay``
    packets. A recorder then subscribes only while it writes, and one that
    was down gets the seconds it missed. 0: there is no pre-roll to give (no
    recorder configured): a recorder that comes stays subscribed and keeps
    its own."""

    TOPIC: ClassVar[bytes] = b"videosupply/"
    preroll: float
    encoding: bool


@dataclass(frozen=True, slots=True)
class Motion(Header):
    """A motion event's start, updates and end. Boxes are ``[x, y, w, h]``
    in normalised (0..1) frame coordinates."""

    TOPIC: ClassVar[bytes] = b"motion/"
    event_id: str
    phase: str  # "start" | "update" | "end"
    boxes: list[list[float]] = field(default_factory=list)
    area: float = 0.0
    score: float = 0.0
    labels: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    alert: bool = True  # False when zones/labels required for alerting are missing
    loitering: dict[str, float] = field(default_factory=dict)  # zone -> seconds someone stayed
    crossings: list[str] = field(default_factory=list)  # "Line:forward" | "Line:backward"
    test_run: str = ""  # the self-test run this event is (never an intrusion), "" if none
    start: float = 0.0  # capture ts of the event's start (0: not said)


@dataclass(frozen=True, slots=True)
class OpenEvent(Header):
    """The event detect has open now ("" for none), every second and at
    once on a change: a latest value for whoever was not listening when its
    ``Motion`` start went out (a recorder restarted mid-event writes its
    clip from this). ``start`` is the capture ts of its start. ``last_*``:
    the last event that ended (its id, start and end), for one whose whole
    life went by while the listener was away."""

    TOPIC: ClassVar[bytes] = b"openevent/"
    event_id: str
    start: float = 0.0
    labels: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    alert: bool = True
    test_run: str = ""
    last_id: str = ""
    last_start: float = 0.0
    last_end: float = 0.0


@dataclass(frozen=True, slots=True)
class Snapshot(Header):
    """Payload: one JPEG; optionally a second part, the motion mask as an image
    (PNG or JPEG), which record saves next to the snapshot when
    ``record.debug_mask_image`` is set."""

    TOPIC: ClassVar[bytes] = b"snapshot/"
    event_id: str  # "" for periodic and manual snapshots
    kind: str  # "event" | "periodic" | "manual"
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Recording(Header):
    """A clip's life. ``started`` when its file is created; ``progress`` about
    every 2 s while it grows, with ``size`` the bytes on disk so far (always a
    whole number of MP4 fragments, so the first ``size`` bytes are a playable
    clip and a growing clip can be shipped in pieces); ``finished`` once closed
    (``path`` is then final: it may differ from ``started``'s with a staging
    folder). ``ts`` is the capture time of the clip's start (started), newest
    frame (progress) or last frame (finished)."""

    TOPIC: ClassVar[bytes] = b"recording/"
    phase: str  # "started" | "progress" | "finished"
    path: str
    start: float
    end: float = 0.0
    duration: float = 0.0
    size: int = 0
    event_id: str = ""
    reason: str = "event"  # "event" | "continuous" | "edge" | "recovered"


@dataclass(frozen=True, slots=True)
class Brightness(Header):
    """Room brightness 0..1 from the IR controller; ``ir_level`` 0..1 is the
    illuminator's current output, so a change tells detect the IR switched."""

    TOPIC: ClassVar[bytes] = b"brightness/"
    level: float
    ir_level: float
    connected: bool = True
    pir: bool = False  # a PIR sensor is enabled on the connected device, so its silence means


@dataclass(frozen=True, slots=True)
class PirMotion(Header):
    """The PIR sensor's output changed: ``active`` True when it starts seeing
    warm movement, False when it stops. ``ts`` is when the ir service read the
    line (the same clock as the frames' capture time on one Pi)."""

    TOPIC: ClassVar[bytes] = b"pir/"
    active: bool


class CommandError(ValueError):
    """A command whose fields are of the right type but make no sense (a
    verdict that is none, an angle that is no number); ``decode`` turns it into
    ``MessageError("bad-field")``."""


@dataclass(frozen=True, slots=True)
class Command(Header):
    """A request to one service. Each command is its own class and topic under
    ``control/``: the type says which service acts on it, so nothing carries an
    untyped argument map. Receivers subscribe to ``COMMAND_PREFIX`` (or to the
    topics they act on) and ignore the commands of others; one of an unknown
    kind arrives as an unknown topic and is counted and dropped like any other
    malformed message. ``source`` says who asked (``web``,
    ``telegram:<chat>``, ``schedule``...), for the log and the arm state."""

    TOPIC: ClassVar[bytes] = b"control/"
    source: str


@dataclass(frozen=True, slots=True)
class Arm(Command):
    """Alerts on (to notify, the owner of the arm state)."""

    TOPIC: ClassVar[bytes] = b"control/arm/"


@dataclass(frozen=True, slots=True)
class Disarm(Command):
    """Alerts off, detection paused (to notify)."""

    TOPIC: ClassVar[bytes] = b"control/disarm/"


@dataclass(frozen=True, slots=True)
class Mute(Command):
    """Stay armed but send no alerts until ``until`` (``time.time()``
    seconds; to notify). The sender works out the end, so every service and
    the page agree on it."""

    TOPIC: ClassVar[bytes] = b"control/mute/"
    until: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.until) or self.until <= 0:
            raise CommandError(f"mute until {self.until!r} is not a time")


@dataclass(frozen=True, slots=True)
class Unmute(Command):
    TOPIC: ClassVar[bytes] = b"control/unmute/"


@dataclass(frozen=True, slots=True)
class Rotate(Command):
    """Point the camera (to ir): servo name -> angle in degrees. The servos
    and their limits are ir's config; ir refuses the whole command if one
    angle is out of range."""

    TOPIC: ClassVar[bytes] = b"control/rotate/"
    angles: dict[str, int]

    def __post_init__(self) -> None:
        if not self.angles:
            raise CommandError("rotate needs at least one servo angle")
        for name, angle in self.angles.items():
            if not isinstance(name, str) or isinstance(angle, bool) or not isinstance(angle, int):
                raise CommandError(f"rotate {name!r}={angle!r}: want a servo name and whole "
                                   "degrees")


IR_MODES = ("on", "off", "auto", "level")


@dataclass(frozen=True, slots=True)
class IrLight(Command):
    """The IR illuminator (to ir): forced ``on`` or ``off``, back to ``auto``,
    or a fixed ``level`` 0..1 (``level`` is used by that mode only)."""

    TOPIC: ClassVar[bytes] = b"control/ir/"
    mode: str
    level: float

    def __post_init__(self) -> None:
        if self.mode not in IR_MODES:
            raise CommandError(f"ir mode {self.mode!r} is not one of {', '.join(IR_MODES)}")
        if not 0.0 <= self.level <= 1.0:
            raise CommandError(f"ir level {self.level!r} is out of range 0..1")


@dataclass(frozen=True, slots=True)
class Forget(Command):
    """A clip deleted after its backup leaves the catalogue (to record, its
    only writer). ``path`` as the catalogue has it."""

    TOPIC: ClassVar[bytes] = b"control/forget/"
    path: str

    def __post_init__(self) -> None:
        if not self.path:
            raise CommandError("forget needs a path")


VERDICTS = ("real", "false_alarm", "")


@dataclass(frozen=True, slots=True)
class Label(Command):
    """A user's verdict on an event (to record, which writes the catalogue):
    ``real``, ``false_alarm``, or ``""`` to clear it."""

    TOPIC: ClassVar[bytes] = b"control/label/"
    event_id: str
    verdict: str

    def __post_init__(self) -> None:
        if not self.event_id:
            raise CommandError("label needs an event id")
        if self.verdict not in VERDICTS:
            raise CommandError(f"verdict {self.verdict!r} is not real, false_alarm or empty")


@dataclass(frozen=True, slots=True)
class Notice(Command):
    """Something the owner must hear about even when muted (to notify), e.g.
    ``kind`` ``storage``: clips deleted before their upload; ``health``: the
    Pi under-powered or hot; ``watch``: a camera gone silent; ``camera_<what>``
    (from detect): the camera covered, blinded, blurred, moved, frozen,
    offline or seeing endless night motion, with the camera's picture as an
    optional payload (one JPEG) that notify sends as the photo. ``all_clear``
    says that an earlier notice of the same kind is over (its ``text`` says
    which), so every alert about a condition has one all-clear."""

    TOPIC: ClassVar[bytes] = b"control/notice/"
    kind: str
    text: str
    all_clear: bool = False

    def __post_init__(self) -> None:
        if not self.text:
            raise CommandError("a notice needs a text")


# The config fields a Tune overrides, with their bounds (common.config's
# fields use these too, so both say the same).
TUNING_LIMITS: dict[str, tuple[float, float]] = {
    "min_pixel_delta_trigger": (1, 255),
    "min_trigger_area": (0, 1),
    "frames_to_start": (1, 30),
}


# The detection profiles (services.detect.profiles switches between them).
DETECT_PROFILES = ("day", "night")


@dataclass(frozen=True, slots=True)
class Tune(Command):
    """Motion sensitivity, live (to detect): the ``detect`` config fields
    ``min_pixel_delta_trigger`` (``threshold``), ``min_trigger_area``
    (``min_area``) and ``frames_to_start``, with the same ranges
    (``TUNING_LIMITS``), for detection ``profile`` ``day`` or ``night`` (""
    for the one in use). Detect uses them whenever that profile is in force
    (from its next frame if it is now) until it restarts on the saved
    config."""

    TOPIC: ClassVar[bytes] = b"control/tune/"
    threshold: int
    min_area: float
    frames_to_start: int
    profile: str = ""

    def __post_init__(self) -> None:
        if self.profile not in ("", *DETECT_PROFILES):
            raise CommandError(f"tune profile {self.profile!r} is not day, night or empty")
        for name, value in (("min_pixel_delta_trigger", self.threshold),
                            ("min_trigger_area", self.min_area),
                            ("frames_to_start", self.frames_to_start)):
            low, high = TUNING_LIMITS[name]
            if not low <= value <= high:
                raise CommandError(f"tune {name} {value!r} is out of range {low:g}..{high:g}")


OVERLAY_MAX_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Overlay(Command):
    """A motion tuner is open (to detect): send ``MotionOverlay`` for each
    frame of the next ``seconds`` (at most ``OVERLAY_MAX_SECONDS``; the tuner
    repeats it while it stays open, 0 stops at once)."""

    TOPIC: ClassVar[bytes] = b"control/overlay/"
    seconds: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.seconds <= OVERLAY_MAX_SECONDS:
            raise CommandError(f"overlay seconds {self.seconds!r} is out of range "
                               f"0..{OVERLAY_MAX_SECONDS:g}")


@dataclass(frozen=True, slots=True)
class SelfTest(Command):
    """Run the pipeline's self-test (to notify, which runs it: from web,
    Telegram ``/selftest`` or its daily schedule); notify then sends the same
    command, with its ``run_id``, to capture (draw a passer-by for
    ``seconds``) and detect (label the event it makes as this test)."""

    TOPIC: ClassVar[bytes] = b"control/selftest/"
    run_id: str = ""  # "" when asking for a run; notify names it
    seconds: float = 4.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.seconds <= 30.0:
            raise CommandError(f"self-test seconds {self.seconds!r} is out of range 1..30")


COMMAND_PREFIX = Command.TOPIC  # subscribe to this for every command
ARMING_COMMANDS = (Arm, Disarm, Mute, Unmute)


@dataclass(frozen=True, slots=True)
class ArmState(Header):
    """The arm state as its owner (notify) has it, on every change and every
    few seconds for late joiners; ``changed_at`` is when it last changed."""

    TOPIC: ClassVar[bytes] = b"state/"
    armed: bool
    muted_until: float = 0.0
    changed_by: str = ""
    changed_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Heartbeat(Header):
    TOPIC: ClassVar[bytes] = b"heartbeat/"
    service: str
    pid: int
    started: float
    status: str  # "ok" | "degraded" | "stopping"
    counters: dict[str, Any] = field(default_factory=dict)
    # detect only: the detection profile in force ("day" | "night"), since
    # when (time.time()) and what switched it ("IR on", "schedule 20:30-06:30")
    profile: str = ""
    profile_since: float = 0.0
    profile_why: str = ""


@dataclass(frozen=True, slots=True)
class MotionOverlay(Header):
    """What detect saw on one frame, while a tuner asks (``Overlay``).
    Payload: the foreground (after the masks) at the working size, ``width``
    x ``height`` bits, row-major, most significant bit first
    (``numpy.packbits``). ``boxes`` are every blob found, normalised;
    ``moving`` says the frame's ``area`` reached the trigger; ``event`` that
    an event is open. The three tuning values are those detect used on this
    frame, under their config names, and ``profile`` the profile they are."""

    TOPIC: ClassVar[bytes] = b"overlay/"
    width: int
    height: int
    boxes: list[list[float]]
    area: float
    moving: bool
    event: bool
    min_pixel_delta_trigger: int
    min_trigger_area: float
    frames_to_start: int
    profile: str = ""  # the detection profile these values belong to


TOPICS: dict[bytes, type[Header]] = {
    cls.TOPIC: cls
    for cls in (
        Frame,
        LiveFrame,
        VideoPacket,
        VideoSupply,
        Motion,
        OpenEvent,
        Snapshot,
        Recording,
        Brightness,
        PirMotion,
        Arm,
        Disarm,
        Mute,
        Unmute,
        Rotate,
        IrLight,
        Forget,
        Label,
        Notice,
        Tune,
        SelfTest,
        Overlay,
        ArmState,
        Heartbeat,
        MotionOverlay,
    )
}

_SIMPLE = {int: (int,), float: (int, float), str: (str,), bool: (bool,), list: (list,),
           dict: (dict,)}


def _schema(cls: type[Header]) -> tuple[tuple[str, tuple[type, ...], bool], ...]:
    """(name, accepted python types, required) per field, worked out once."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        origin = typing.get_origin(hint) or hint
        if origin is types.UnionType:
            origin = typing.get_args(hint)[0]
        accepted = _SIMPLE.get(origin, (object,))
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append((f.name, accepted, required))
    return tuple(out)


_SCHEMAS: dict[type[Header], tuple[tuple[str, tuple[type, ...], bool], ...]] = {}
_NAMES: dict[type[Header], tuple[str, ...]] = {}


def _fields_of(cls: type[Header]) -> tuple[tuple[str, tuple[type, ...], bool], ...]:
    """Worked out on a class's first use: resolving the type hints of every
    header at import cost each service tens of milliseconds at every start."""
    schema = _SCHEMAS.get(cls)
    if schema is None:
        schema = _SCHEMAS[cls] = _schema(cls)
        _NAMES[cls] = tuple(name for name, _, _ in schema)
    return schema


def encode(header: Header) -> list[bytes]:
    """Topic and header frames for ``header``; append the payload yourself."""
    cls = type(header)
    body = {"v": PROTOCOL_VERSION}
    _fields_of(cls)
    for name in _NAMES[cls]:
        body[name] = getattr(header, name)
    return [cls.TOPIC, msgpack.packb(body, use_bin_type=True)]


# Headers are small maps; these bound what a hostile one can make us allocate
# (a 1 MB array of nils decoded to 73 MB of Python objects).
MAX_HEADER_BYTES = 64 * 1024
UNPACK_LIMITS = {"max_str_len": MAX_HEADER_BYTES, "max_bin_len": MAX_HEADER_BYTES,
                 "max_array_len": 4096, "max_map_len": 256, "max_ext_len": 0}


def decode(topic: bytes, raw_header: bytes | memoryview) -> Header:
    """The typed header of one message, or ``MessageError``."""
    cls = TOPICS.get(bytes(topic))
    if cls is None:
        raise MessageError("unknown-topic", repr(bytes(topic)[:40]))
    if len(raw_header) > MAX_HEADER_BYTES:
        raise MessageError("garbage", f"{cls.__name__} header of {len(raw_header)} bytes "
                                      f"(at most {MAX_HEADER_BYTES})")
    try:
        body = msgpack.unpackb(raw_header, raw=False, strict_map_key=True, **UNPACK_LIMITS)
    except Exception as exc:  # noqa: BLE001 - msgpack raises a zoo of types on garbage
        raise MessageError("garbage", f"{cls.__name__} header is not msgpack ({exc})") from None
    if not isinstance(body, dict):
        raise MessageError("garbage", f"{cls.__name__} header is not a map")
    version = body.pop("v", None)
    if version != PROTOCOL_VERSION:
        raise MessageError("version", f"{cls.__name__} has v={version!r}, want {PROTOCOL_VERSION}")
    kwargs: dict[str, Any] = {}  # each value checked against its field's type above
    for name, accepted, required in _fields_of(cls):
        if name not in body:
            if required:
                raise MessageError("missing-field", f"{cls.__name__}.{name}")
            continue
        value = body[name]
        if not isinstance(value, accepted) or (accepted == (int,) and isinstance(value, bool)):
            raise MessageError("bad-field", f"{cls.__name__}.{name}={value!r:.40}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except CommandError as exc:
        raise MessageError("bad-field", f"{cls.__name__}: {exc}") from None
