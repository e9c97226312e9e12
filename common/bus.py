"""Publishers and subscribers on the pisentry bus (see ``common.messages``).

This is the only module besides service shells that touches zmq sockets.

Endpoints. Each producer binds its own PUB socket and consumers connect to it,
so any worker can restart alone. Names and who binds them:

    frames   capture   raw frames: ``frame/lores/`` and ``frame/live/``
    video    capture   ``h264/``
    capture  capture   heartbeats (kept apart so raw-frame dropping never eats one)
    detect   detect    ``motion/``, ``snapshot/``, heartbeats
    record   record    ``recording/``, ``snapshot/`` (periodic), heartbeats
    notify   notify    ``control/``, ``state/``, heartbeats
    ir       ir        ``brightness/``, heartbeats
    web      web       ``control/``, ``state/``, heartbeats

Default endpoints are ``ipc://`` sockets in ``$PISENTRY_HOME/run`` (mode 0700,
so only the user can connect); a socket placed elsewhere is made 0600 itself,
and an abstract name (``ipc://@name``, which any local user can open) is
refused. A ``tcp://`` endpoint always uses CURVE: the binding side is the
CURVE server with this host's key pair; the connecting side must know the
server's public key, and only listed client keys get through: this host's
own public key (a single-host setup) and ``authorized_clients``. A stranger's
key pair gets nothing.

Slow subscribers. The high-water mark is per socket, so raw frames and h264
travel on separate sockets: raw frames with a tiny HWM, and a subscriber that
opts into ``latest_only`` drains its queue and keeps only the newest frame per
topic; h264 keeps a few GOPs. A PUB socket drops the *newest* message when a
subscriber's queue is full and says nothing; that loss shows up as a gap in
``seq``, which every subscriber counts (``Message.gap``; ``RESTARTED`` when a
producer came back and its ``seq`` started over; a producer that died after
fewer messages than it lost on coming back reads as a plain gap). A video consumer treats any
non-zero gap the same way: wait for the next keyframe.

Buffer ownership. ``Publisher.publish`` sends payload parts with
``copy=False``: the caller hands over the buffer and must not write to it
again (copy a recycled camera buffer first). Parts under ``COPY_BELOW`` are
copied all the same: zero-copy keeps each buffer alive through pyzmq's
garbage-collector thread (a second zmq context, a wake-up per message),
which costs more than copying a frame that small (a 320x240 lores frame:
0.1 ms per message more). Received payloads are
memoryviews into zmq frames, valid as long as the ``Message`` is referenced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
import zmq.auth

from common.messages import Header, MessageError, decode, encode
from common.paths import Home

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

    from common.config import Config

log = logging.getLogger(__name__)

RESTARTED = -1
MAX_GAP = 1_000_000  # a larger seq jump is treated as a restart, not counted as loss
COPY_BELOW = 128 * 1024
# A SUB socket retries an endpoint nobody binds (ir, notify, web when they are
# not in general.services) every 100-200 ms for ever: ~7 wake-ups a second of
# its IO thread per endpoint, ~20 of detect's ~135 a second on the peer feed.
# Retries back off to this instead (libzmq doubles the interval from 100 ms
# and starts at 100 ms again after each lost connection), so a producer that
# restarts is found again at most this much later than before.
RECONNECT_MAX_MS = 500
ENDPOINT_NAMES = ("frames", "video", "capture", "detect", "record", "notify", "ir", "web")
STATUS_ENDPOINTS = ("capture", "detect", "record", "notify", "ir", "web")


@dataclass(slots=True)
class Message:
    topic: bytes
    header: Any  # a common.messages.Header subclass
    payload: list[memoryview]
    gap: int = 0  # messages of this stream lost just before this one; RESTARTED (-1)
    # when the producer restarted (seq went back), so how many is unknown


@dataclass
class SubscriberStats:
    received: int = 0
    gaps: int = 0  # messages lost (seq jumps)
    stale: int = 0  # frames skipped by latest_only draining
    restarts: int = 0  # producers seen starting over (seq went back)
    malformed: int = 0
    malformed_kinds: dict[str, int] = field(default_factory=dict)


def _track_key(header: Header) -> tuple[str, ...]:
    origin = getattr(header, "service", "") or getattr(header, "source", "") or getattr(
        header, "changed_by", "")
    return (type(header).TOPIC.decode(), header.camera, origin)


class Publisher:
    """One PUB socket. ``publish`` never blocks.

    Made with ``track_subscribers`` it is an XPUB socket that also knows which
    topics someone subscribes to (``wanted``), so a producer can skip work
    nobody would receive, and when a subscriber joins (``joined``), so it can
    give a newcomer what it needs to start (capture: the pre-roll)."""

    def __init__(self, socket: zmq.Socket, camera: str, endpoint: str) -> None:
        self._socket = socket
        self.camera = camera
        self.endpoint = endpoint
        self._seq: dict[bytes, int] = {}
        self._subscriptions: set[bytes] = set()
        self._joins: set[bytes] = set()  # prefixes subscribed to since ``joined`` last looked
        self.sent = 0

    def wanted(self, topic: bytes) -> bool:
        """Whether any subscriber's prefix matches ``topic`` (XPUB only).
        XPUB reports every subscription (``XPUB_VERBOSE``: a second
        subscriber to a prefix too) and a prefix's last unsubscription (a
        subscriber that goes away unsubscribes too)."""
        self._read_events()
        return any(topic.startswith(prefix) for prefix in self._subscriptions)

    def joined(self, topic: bytes) -> bool:
        """Whether someone subscribed to ``topic`` since the last call (a
        first subscriber or one more; one that unsubscribed and came back)."""
        self._read_events()
        if not self._joins:
            return False
        joins, self._joins = self._joins, set()
        return any(topic.startswith(prefix) for prefix in joins)

    def interest(self, topic: bytes) -> tuple[bool, bool]:
        """``wanted`` and ``joined`` from one look at the socket (capture
        asks both every frame)."""
        joined = self.joined(topic)
        return any(topic.startswith(prefix) for prefix in self._subscriptions), joined

    def _read_events(self) -> None:
        sock = self._socket
        # ZMQ_EVENTS rather than Socket.poll, which builds a Poller each call.
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            event = sock.recv(zmq.NOBLOCK)
            if event[:1] == b"\x01":
                self._subscriptions.add(event[1:])
                self._joins.add(event[1:])
            elif event[:1] == b"\x00":
                self._subscriptions.discard(event[1:])

    def publish(self, cls: type[Header], payload: Sequence[Any] = (), *, ts: float,
                camera: str | None = None, **fields: Any) -> Header:
        """Build the ``cls`` header (camera, seq and ts filled in) and send it
        with ``payload`` zero-copy. Returns the header that went out."""
        seq = self._seq.get(cls.TOPIC, 0)
        self._seq[cls.TOPIC] = seq + 1
        header = cls(camera=camera or self.camera, seq=seq, ts=ts, **fields)
        self.send(header, payload)
        return header

    def send(self, header: Header, payload: Sequence[Any] = ()) -> None:
        parts = encode(header)
        if payload:
            self._socket.send_multipart([*parts, *payload], flags=zmq.NOBLOCK, copy=False)
        else:
            self._socket.send_multipart(parts, flags=zmq.NOBLOCK)
        self.sent += 1

    def close(self) -> None:
        self._socket.close(linger=0)


class Subscriber:
    """One SUB socket connected to one or more endpoints."""

    def __init__(self, socket: zmq.Socket, latest_only: bool, batch: int = 64) -> None:
        self.socket = socket
        self.latest_only = latest_only
        self.batch = batch
        self.stats = SubscriberStats()
        self._last_seq: dict[tuple[str, ...], int] = {}

    def read(self) -> list[Message]:
        """Messages waiting now (without blocking), decoded. With
        ``latest_only``, only the newest message of each topic."""
        out: list[Message] = []
        sock = self.socket
        for i in range(self.batch):
            # Asking whether another message waits costs less than the
            # zmq.Again that recv raises when none does (the usual end of a
            # read: one frame a wake-up).
            if i and not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                break
            try:
                topic = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            # The topic and the header are small: copied as bytes, which is
            # cheaper than a zmq.Frame each. Payloads stay zero-copy.
            header = sock.recv(zmq.NOBLOCK) if sock.getsockopt(zmq.RCVMORE) else None
            payload = []
            while sock.getsockopt(zmq.RCVMORE):
                payload.append(memoryview(sock.recv(zmq.NOBLOCK, copy=False)))
            msg = self._decode(topic, header, payload)
            if msg is not None:
                out.append(msg)
        if self.latest_only and len(out) > 1:
            newest: dict[bytes, Message] = {}
            for msg in out:
                newest[msg.topic] = msg
            self.stats.stale += len(out) - len(newest)
            out = list(newest.values())
        return out

    def recv(self, timeout: float) -> list[Message]:
        """Wait up to ``timeout`` seconds for messages, then ``read``."""
        if self.socket.poll(int(timeout * 1000)):
            return self.read()
        return []

    def _decode(self, topic: bytes, raw_header: bytes | None, payload: list[memoryview]
                ) -> Message | None:
        try:
            if raw_header is None:
                raise MessageError("garbage", "1 frame(s), want topic and header")
            header = decode(topic, raw_header)
        except MessageError as exc:
            self.stats.malformed += 1
            seen = self.stats.malformed_kinds.get(exc.kind, 0)
            self.stats.malformed_kinds[exc.kind] = seen + 1
            if not seen:  # once per kind: a flood of garbage must not flood the log
                log.warning("dropped malformed bus message (%s); further ones counted only", exc)
            return None
        self.stats.received += 1
        key = _track_key(header)
        last = self._last_seq.get(key)
        gap = 0
        if last is not None and header.seq > last + MAX_GAP:
            # No queue holds this many: a corrupt or foreign seq, not a loss; counting
            # it would overflow the heartbeat's counters and kill the worker.
            gap = RESTARTED
            self.stats.restarts += 1
        elif last is not None and header.seq > last + 1:
            gap = header.seq - last - 1
            self.stats.gaps += gap
        elif last is not None and header.seq <= last:
            gap = RESTARTED
            self.stats.restarts += 1
        self._last_seq[key] = header.seq
        return Message(topic, header, payload, gap)

    def close(self) -> None:
        self.socket.close(linger=0)


class _AllowList:
    """ZAP credentials provider for CURVE: only the configured client keys."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = {k.encode() for k in keys}

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self._keys  # pyzmq hands over the Z85 form


class Bus:
    """Factory for this process's sockets; one zmq context per process."""

    def __init__(self, config: Config, home: Home, context: zmq.Context | None = None) -> None:
        self.config = config
        self.home = home
        self.camera = config.general.camera
        self.context = context or zmq.Context.instance()
        self._sockets: list[Publisher | Subscriber] = []
        self._authenticator: ThreadAuthenticator | None = None

    def endpoint(self, name: str) -> str:
        if name not in ENDPOINT_NAMES:
            raise ValueError(f"unknown endpoint {name!r}")
        override = self.config.bus.endpoints.get(name)
        if override:
            return _checked(override)
        return f"ipc://{self.home.run_dir / (name + '.sock')}"

    def publisher(self, name: str, hwm: int | None = None,
                  track_subscribers: bool = False) -> Publisher:
        """Bind the PUB socket of endpoint ``name`` (XPUB with
        ``track_subscribers``: see ``Publisher.wanted``)."""
        if hwm is None:
            hwm = {"frames": self.config.bus.frames_hwm,
                   "video": self.config.bus.video_hwm}.get(name, 1000)
        url = self.endpoint(name)
        sock = self.context.socket(zmq.XPUB if track_subscribers else zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.LINGER, 0)
        sock.copy_threshold = COPY_BELOW
        if track_subscribers:
            sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        if url.startswith("tcp://"):
            self._curve_server(sock)
        else:
            _prepare_ipc(url)
        try:
            sock.bind(url)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise RuntimeError(f"cannot bind bus endpoint {name} at {url}: {exc}") from None
        if url.startswith("ipc://"):
            os.chmod(url[len("ipc://"):], 0o600)  # connecting needs write access to it
        pub = Publisher(sock, self.camera, url)
        self._sockets.append(pub)
        return pub

    def subscriber(self, names: Iterable[str], topics: Iterable[bytes], *,
                   latest_only: bool = False, hwm: int | None = None,
                   endpoints: Iterable[str] = (), server_key: str = "") -> Subscriber:
        """Connect a SUB socket to endpoints ``names`` (and raw ``endpoints``
        URLs, e.g. another camera's) for ``topics``."""
        urls = [self.endpoint(n) for n in names] + [_checked(u) for u in endpoints]
        if hwm is None:
            hwm = self.config.bus.frames_hwm if latest_only else self.config.bus.video_hwm
        sock = self.context.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, hwm)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)
        if any(u.startswith("tcp://") for u in urls):
            self._curve_client(sock, server_key)
        for topic in topics:
            sock.setsockopt(zmq.SUBSCRIBE, topic)
        for url in urls:
            sock.connect(url)
        sub = Subscriber(sock, latest_only)
        self._sockets.append(sub)
        return sub

    def published(self) -> int:
        """Messages sent by every publisher of this process."""
        return sum(s.sent for s in self._sockets if isinstance(s, Publisher))

    def close(self) -> None:
        for s in self._sockets:
            s.close()
        self._sockets.clear()
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None

    def _curve_server(self, sock: zmq.Socket) -> None:
        curve = self.config.bus.curve
        secret = curve.secret_key.get_secret_value()
        if not (curve.public_key and secret):
            raise RuntimeError("bus.curve.public_key and bus.curve.secret_key are required for "
                               "tcp:// endpoints (make them with `pisentry keygen`)")
        if self._authenticator is None:
            # Without an authenticator CURVE lets any key pair in. Imported here:
            # it brings asyncio (~6 MB per process), and ipc-only buses never need it.
            from zmq.auth.thread import ThreadAuthenticator
            self._authenticator = ThreadAuthenticator(self.context)
            self._authenticator.start()
            self._authenticator.configure_curve_callback(
                "*", credentials_provider=_AllowList([curve.public_key,
                                                      *curve.authorized_clients]))
        sock.curve_server = True
        sock.curve_publickey = curve.public_key.encode()
        sock.curve_secretkey = secret.encode()

    def _curve_client(self, sock: zmq.Socket, server_key: str) -> None:
        curve = self.config.bus.curve
        server_key = server_key or curve.server_public_key or curve.public_key
        if not server_key:
            raise RuntimeError("a tcp:// endpoint needs the server's CURVE public key "
                               "(bus.curve.server_public_key)")
        public, secret = curve.public_key, curve.secret_key.get_secret_value()
        if not (public and secret):
            public_b, secret_b = zmq.curve_keypair()
            public, secret = public_b.decode(), secret_b.decode()
        sock.curve_serverkey = server_key.encode()
        sock.curve_publickey = public.encode()
        sock.curve_secretkey = secret.encode()


def _checked(url: str) -> str:
    if url.startswith("ipc://@"):
        raise RuntimeError(f"{url}: abstract ipc names are open to every local user; "
                           "use a path (ipc:///PATH)")
    return url


def _prepare_ipc(url: str) -> None:
    """Make the socket's folder, private, when it does not exist; a folder
    that exists is someone's (/tmp, /run/user/...) and is left as it is."""
    path = Path(url[len("ipc://"):])
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True)
        os.chmod(path.parent, 0o700)  # mkdir's mode is cut by the umask
