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
``frame/live/``         ``Frame``         pixels for the live view (bgr24)
``h264/``               ``VideoPacket``   one h264 access unit, Annex-B
``motion/``             ``Motion``        none
``snapshot/``           ``Snapshot``      one JPEG
``recording/``          ``Recording``     none
``brightness/``         ``Brightness``    none
``control/``            ``Control``       none
``state/``              ``ArmState``      none
``heartbeat/``          ``Heartbeat``     none
======================  ================  =====================================
"""

from __future__ import annotations

import dataclasses
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


@dataclass(frozen=True, slots=True)
class LiveFrame(Frame):
    TOPIC: ClassVar[bytes] = b"frame/live/"


@dataclass(frozen=True, slots=True)
class VideoPacket(Header):
    """One h264 access unit. ``pts`` is the capture time in microseconds on
    the producer's monotonic clock; SPS/PPS precede every keyframe."""

    TOPIC: ClassVar[bytes] = b"h264/"
    pts: int
    keyframe: bool
    width: int
    height: int
    fps: float


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


@dataclass(frozen=True, slots=True)
class Control(Header):
    """A command for a service: ``target`` is a service name or ``*``."""

    TOPIC: ClassVar[bytes] = b"control/"
    target: str
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True, slots=True)
class ArmState(Header):
    TOPIC: ClassVar[bytes] = b"state/"
    armed: bool
    muted_until: float = 0.0
    changed_by: str = ""


@dataclass(frozen=True, slots=True)
class Heartbeat(Header):
    TOPIC: ClassVar[bytes] = b"heartbeat/"
    service: str
    pid: int
    started: float
    status: str  # "ok" | "degraded" | "stopping"
    counters: dict[str, Any] = field(default_factory=dict)


TOPICS: dict[bytes, type[Header]] = {
    cls.TOPIC: cls
    for cls in (
        Frame,
        LiveFrame,
        VideoPacket,
        Motion,
        Snapshot,
        Recording,
        Brightness,
        Control,
        ArmState,
        Heartbeat,
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


_SCHEMAS = {cls: _schema(cls) for cls in TOPICS.values()}
_NAMES = {cls: tuple(name for name, _, _ in schema) for cls, schema in _SCHEMAS.items()}


def encode(header: Header) -> list[bytes]:
    """Topic and header frames for ``header``; append the payload yourself."""
    cls = type(header)
    body = {"v": PROTOCOL_VERSION}
    for name in _NAMES[cls]:
        body[name] = getattr(header, name)
    return [cls.TOPIC, msgpack.packb(body, use_bin_type=True)]


def decode(topic: bytes, raw_header: bytes | memoryview) -> Header:
    """The typed header of one message, or ``MessageError``."""
    cls = TOPICS.get(bytes(topic))
    if cls is None:
        raise MessageError("unknown-topic", repr(bytes(topic)[:40]))
    try:
        body = msgpack.unpackb(raw_header, raw=False, strict_map_key=True)
    except Exception as exc:  # noqa: BLE001 - msgpack raises a zoo of types on garbage
        raise MessageError("garbage", f"{cls.__name__} header is not msgpack ({exc})") from None
    if not isinstance(body, dict):
        raise MessageError("garbage", f"{cls.__name__} header is not a map")
    version = body.pop("v", None)
    if version != PROTOCOL_VERSION:
        raise MessageError("version", f"{cls.__name__} has v={version!r}, want {PROTOCOL_VERSION}")
    kwargs: dict[str, Any] = {}  # each value checked against its field's type above
    for name, accepted, required in _SCHEMAS[cls]:
        if name not in body:
            if required:
                raise MessageError("missing-field", f"{cls.__name__}.{name}")
            continue
        value = body[name]
        if not isinstance(value, accepted) or (accepted == (int,) and isinstance(value, bool)):
            raise MessageError("bad-field", f"{cls.__name__}.{name}={value!r:.40}")
        kwargs[name] = value
    return cls(**kwargs)
