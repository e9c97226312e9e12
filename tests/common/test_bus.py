"""The bus over real ZMQ sockets: draining, gaps, restarts, CURVE, bad input."""

import os
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from common.bus import COPY_BELOW, RESTARTED, Bus
from common.config import parse_config
from common.messages import Brightness, Frame, Heartbeat, Motion

_OPEN: list[Bus] = []


@pytest.fixture(autouse=True)
def _close_buses():
    """Close every bus even when a test fails: a context with open sockets
    would hang its garbage collection, and with it the next test."""
    yield
    while _OPEN:
        bus = _OPEN.pop()
        bus.close()
        bus.context.destroy(linger=0)


def _bus(home, **raw):
    bus = Bus(parse_config(raw), home, context=zmq.Context())
    _OPEN.append(bus)
    return bus


def _frame(i):
    return np.full((24, 32), i % 256, np.uint8)


def _collect(sub, seconds=1.0, until=None):
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        out += sub.recv(0.05)
        if until and until(out):
            break
    return out


def test_latest_only_keeps_the_newest_frame_per_topic(home):
    bus = _bus(home)
    pub = bus.publisher("frames", hwm=100)
    sub = bus.subscriber(["frames"], [b"frame/"], latest_only=True, hwm=100)
    time.sleep(0.2)
    for i in range(20):
        pub.publish(Frame, [_frame(i)], ts=time.time(), width=32, height=24, format="gray")
    time.sleep(0.2)
    msgs = sub.read()
    assert len(msgs) == 1 and msgs[0].header.seq == 19
    assert bytes(msgs[0].payload[0])[:1] == bytes([19])
    assert sub.stats.stale == 19
    bus.close()


def test_a_read_takes_every_waiting_message_whole_and_zero_copy(home):
    """Between good messages: a topic alone, and a header that is no msgpack;
    each is counted and dropped, and nothing of one leaks into the next."""
    bus = _bus(home)
    pub = bus.publisher("frames", hwm=100)
    sub = bus.subscriber(["frames"], [b"frame/"], hwm=100)
    time.sleep(0.2)
    raw = pub._socket
    pub.publish(Frame, [_frame(1), b"second part"], ts=1.0, width=32, height=24, format="gray")
    raw.send_multipart([Frame.TOPIC])
    raw.send_multipart([Frame.TOPIC, b"\xc1", b"payload of garbage"])
    pub.publish(Frame, [_frame(2)], ts=2.0, width=32, height=24, format="gray")
    time.sleep(0.2)
    msgs = sub.read()
    assert [m.header.ts for m in msgs] == [1.0, 2.0]
    assert [len(m.payload) for m in msgs] == [2, 1]
    assert bytes(msgs[0].payload[1]) == b"second part"
    assert isinstance(msgs[1].payload[0], memoryview) and bytes(msgs[1].payload[0])[:1] == b"\x02"
    assert sub.stats.malformed == 2 and sub.stats.malformed_kinds == {"garbage": 2}
    assert sub.read() == []
    bus.close()


def test_a_lores_sized_payload_is_copied_at_publish(home):
    """Under ``COPY_BELOW`` a payload is copied (cheaper than zero-copy's
    bookkeeping thread): what the subscriber gets is the buffer as it was
    when published, whatever the caller writes into it afterwards."""
    bus = _bus(home)
    pub = bus.publisher("frames", hwm=100)
    sub = bus.subscriber(["frames"], [b"frame/"], hwm=100)
    time.sleep(0.2)
    for i in range(10):
        buf = np.full((240, 320), i, np.uint8)  # 75 KiB: zero-copy by pyzmq's default
        assert buf.nbytes < COPY_BELOW
        pub.publish(Frame, [buf], ts=time.time(), width=320, height=240, format="gray")
        buf[:] = 255
    msgs = _collect(sub, 2.0, until=lambda out: len(out) == 10)
    assert [bytes(m.payload[0])[:1] for m in msgs] == [bytes([i]) for i in range(10)]
    assert all(bytes(m.payload[0]).count(255) == 0 for m in msgs)
    bus.close()


def test_full_queue_shows_up_as_counted_gaps(home):
    bus = _bus(home)
    pub = bus.publisher("frames", hwm=2)
    sub = bus.subscriber(["frames"], [b"frame/lores/"], hwm=2)
    time.sleep(0.2)
    for i in range(50):
        pub.publish(Frame, [np.zeros((240, 320), np.uint8)], ts=time.time(), width=320,
                    height=240, format="gray")
    time.sleep(0.3)
    first = _collect(sub, 0.5)
    pub.publish(Frame, [_frame(1)], ts=time.time(), width=32, height=24, format="gray")
    late = _collect(sub, 1.0, until=lambda m: m)
    assert first[0].header.seq == 0 and len(first) < 50
    assert late[-1].header.seq == 50 and late[-1].gap == 50 - 1 - first[-1].header.seq
    # every message is either received or counted as lost
    assert sub.stats.received + sub.stats.gaps == 51
    bus.close()


def test_producer_restart_is_reported(home):
    bus = _bus(home)
    sub = bus.subscriber(["detect"], [Motion.TOPIC])
    received = []
    for run in range(2):
        pub = bus.publisher("detect")
        got = []
        for _ in range(100):  # until the (re)connection carries messages
            pub.publish(Motion, ts=time.time(), event_id="e", phase="update")
            got += sub.recv(0.05)
            if len(got) >= 3:
                break
        assert got, "no message after (re)start"
        if not run:  # a producer that ran a while before it died, as they do
            for _ in range(50):
                pub.publish(Motion, ts=time.time(), event_id="e", phase="update")
            got += _collect(sub, 2.0, until=lambda m: m and m[-1].header.seq >= 50)
        received.append(got)
        pub.close()
    assert [m.gap for m in received[0][1:]] == [0] * (len(received[0]) - 1)
    assert received[1][0].gap == RESTARTED
    assert sub.stats.restarts == 1
    bus.close()


def test_ipc_sockets_live_in_a_private_directory(home):
    bus = _bus(home)
    bus.publisher("detect")
    assert (home.run_dir / "detect.sock").exists()
    assert home.run_dir.stat().st_mode & 0o077 == 0
    bus.close()


def _curve_config(port, server_public, server_secret, client_public="", client_secret="",
                  server_key="", authorized=()):
    return {"bus": {"endpoints": {"detect": f"tcp://127.0.0.1:{port}"},
                    "curve": {"public_key": client_public or server_public,
                              "secret_key": client_secret or server_secret,
                              "server_public_key": server_key or server_public,
                              "authorized_clients": list(authorized)}}}


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("client", ["right-key", "wrong-server-key", "unlisted-client"])
def test_tcp_endpoints_use_curve(home, client):
    server_pub, server_sec = (k.decode() for k in zmq.curve_keypair())
    client_pub, client_sec = (k.decode() for k in zmq.curve_keypair())
    stranger_pub, stranger_sec = (k.decode() for k in zmq.curve_keypair())
    port = _free_port()
    server = _bus(home, **_curve_config(port, server_pub, server_sec, authorized=[client_pub]))
    pub = server.publisher("detect")
    if client == "right-key":
        cfg = _curve_config(port, server_pub, server_sec, client_pub, client_sec)
    elif client == "wrong-server-key":
        cfg = _curve_config(port, server_pub, server_sec, client_pub, client_sec,
                            server_key=stranger_pub)
    else:
        cfg = _curve_config(port, server_pub, server_sec, stranger_pub, stranger_sec)
    viewer = _bus(home, **cfg)
    sub = viewer.subscriber(["detect"], [Motion.TOPIC])
    got = []
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and not got:
        pub.publish(Motion, ts=time.time(), event_id="e", phase="start")
        got += sub.recv(0.1)
    assert bool(got) == (client == "right-key")
    viewer.close()
    server.close()


def test_tcp_endpoint_without_keys_refuses_to_bind(home):
    bus = _bus(home, bus={"endpoints": {"detect": "tcp://127.0.0.1:5999"}})
    with pytest.raises(RuntimeError, match="pisentry keygen"):
        bus.publisher("detect")
    bus.close()


def test_a_worker_drops_malformed_messages_and_stays_up(home):
    """A real capture process gets garbage on a topic it follows."""
    from tests.support import pisentry_process

    bus = _bus(home)
    ir = bus.publisher("ir")
    heartbeats = bus.subscriber(["capture"], [Heartbeat.TOPIC], hwm=100)
    frames = bus.subscriber(["frames"], [Frame.TOPIC], hwm=1000)
    with pisentry_process("capture", home=home, config={"capture": {"width": 320,
                                                                    "height": 240}}):
        assert _collect(heartbeats, 15, until=lambda m: m), "capture never started"
        sock = ir._socket
        bad = [
            [b"brightness/"],
            [b"brightness/", b"\xc1not msgpack"],
            [b"brightness/", msgpack.packb({"v": 99, "camera": "c", "seq": 0, "ts": 0.0,
                                            "level": 0.5, "ir_level": 0.0})],
            [b"brightness/", msgpack.packb({"v": 1, "camera": "c", "seq": 0, "ts": 0.0})],
            [b"brightness/", msgpack.packb({"v": 1, "camera": "c", "seq": 0, "ts": 0.0,
                                            "level": "dark", "ir_level": 0.0})],
        ]
        for _ in range(20):
            for parts in bad:
                sock.send_multipart(parts)
        ir.publish(Brightness, ts=time.time(), level=0.5, ir_level=0.0)
        time.sleep(1.0)
        beats = _collect(heartbeats, 3.0, until=lambda m: m and m[-1].header.counters.get(
            "malformed", 0) >= 100)
        counters = beats[-1].header.counters
        assert counters["malformed"] == 100, counters
        assert counters["errors"] == 0
        before = len(_collect(frames, 1.0))
        assert before >= 10, "capture stopped publishing frames after garbage"
    bus.close()


def _zmq_io_threads():
    """Thread ids of this process's ZMQ IO threads, with their voluntary
    context switches (each a wake-up)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            task = Path("/proc/self/task") / tid
            if not (task / "comm").read_text().startswith("ZMQbg/IO"):
                continue
            status = (task / "status").read_text()
        except OSError:
            continue
        out[tid] = int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
    return out


def test_a_subscriber_backs_off_from_endpoints_nobody_binds_and_still_connects(home):
    before = _zmq_io_threads()
    bus = _bus(home)
    subs = [bus.subscriber([name], [Brightness.TOPIC]) for name in ("ir", "notify", "web")]
    time.sleep(0.3)  # an IO thread names itself once it runs
    ours = [t for t in _zmq_io_threads() if t not in before]
    assert len(ours) == 1
    time.sleep(2.0)  # past the first retries, whose interval grows from 100 ms
    woken = _zmq_io_threads()[ours[0]]
    time.sleep(2.0)
    # Without a cap the three endpoints are retried every 100-200 ms: ~40 wake-ups.
    assert _zmq_io_threads()[ours[0]] - woken < 20
    pub = bus.publisher("ir")  # the producer comes up at last: found again
    got = []
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        pub.publish(Brightness, ts=time.time(), level=0.5, ir_level=0.0)
        got = subs[0].recv(0.1)
    assert got and isinstance(got[0].header, Brightness)
