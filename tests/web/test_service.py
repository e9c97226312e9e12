"""The web service as a real process (``pisentry web``) on a real bus: frames
and messages come from real publishers in this test, as capture, detect and
notify would send them."""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Self

import cv2
import httpx
import numpy as np
import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from common.bus import Bus, Subscriber
from common.catalogue import CatalogueReader, CatalogueWriter
from common.config import Config, parse_config
from common.messages import ArmState, Disarm, Header, Heartbeat, LiveFrame, Motion
from common.paths import Home
from tests.support import pisentry_process
from tests.web.conftest import API_KEY

H = {"X-API-Key": API_KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FramePump:
    """Publishes 640x480 bgr24 live frames at 10 fps, each a different grey level."""

    def __init__(self, bus: Bus, camera: str = "cam1") -> None:
        self.pub = bus.publisher("frames")
        self.camera = camera
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            level = (self.sent * 37) % 256
            img = np.full((480, 640, 3), level, np.uint8)  # a fresh buffer: sent zero-copy
            self.pub.publish(LiveFrame, [img], ts=time.time(), camera=self.camera, width=640,
                             height=480, format="bgr24")
            self.sent += 1
            time.sleep(0.1)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(2)


@dataclass
class Running:
    home: Home
    config: Config
    bus: Bus
    base: str
    proc: object

    def status(self) -> dict:
        return httpx.get(f"{self.base}/api/status", headers=H, timeout=5).json()


@pytest.fixture
def web(home: Home) -> Iterator[Running]:
    port = free_port()
    raw = {"general": {"services": ["capture", "web"]},
           "web": {"port": port, "api_key": API_KEY}}
    config = parse_config(raw)
    bus = Bus(config, home)
    with pisentry_process("web", home=home, config=raw) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_web(base, proc, home)
        yield Running(home, config, bus, base, proc)
    bus.close()


class Parts:
    """Reads JPEGs off an MJPEG response, keeping the response open between calls
    (closing ``iter_bytes`` early would close the connection)."""

    def __init__(self, stream: httpx.Response) -> None:
        self._chunks = stream.iter_bytes()
        self._buf = b""

    def take(self, n: int) -> list[bytes]:
        parts: list[bytes] = []
        while len(parts) < n:
            start = self._buf.find(b"\xff\xd8")
            end = self._buf.find(b"\xff\xd9", max(start, 0))
            if start >= 0 and end >= 0:
                parts.append(self._buf[start:end + 2])
                self._buf = self._buf[end + 2:]
                continue
            self._buf += next(self._chunks)
        return parts


def test_live_mjpeg_encodes_once_and_not_without_viewers(web: Running) -> None:
    with FramePump(web.bus) as pump:
        time.sleep(2.0)
        cam = web.status()["cameras"][0]
        # nobody watching: frames are not even received, let alone encoded
        assert cam["encoded"] == 0 and cam["frames_in"] == 0 and pump.sent >= 15
        with httpx.Client(headers=H, timeout=10) as a, \
                httpx.Client(headers=H, timeout=10) as b, \
                a.stream("GET", f"{web.base}/stream.mjpg") as sa, \
                b.stream("GET", f"{web.base}/stream.mjpg?fps=30") as sb:
            assert sa.headers["content-type"].startswith("multipart/x-mixed-replace")
            pa, pb = Parts(sa), Parts(sb)  # kept: dropping one would close its stream
            first_a, first_b = pa.take(10), pb.take(10)
            cam = web.status()["cameras"][0]
        assert len(first_a) == 10 and len(first_b) == 10
        images = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in first_a]
        assert images[0].shape == (480, 640, 3)
        assert len({int(img[10, 10, 0]) // 8 for img in images}) >= 5  # the picture changes
        # two viewers, one encoding per frame received (not one per viewer)
        assert cam["viewers"] == 2, cam
        assert 0 < cam["encoded"] <= cam["frames_in"]
        assert set(first_a) & set(first_b)  # the very same bytes went to both


def wait_for_web(base: str, proc: subprocess.Popen, home: Home) -> None:
    # generous: web imports FastAPI and uvicorn, slow on a loaded CI machine
    deadline = time.monotonic() + 45
    while True:
        assert proc.poll() is None, (home.root / "web.out").read_text()
        try:
            if httpx.get(f"{base}/api/status", headers=H, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "web did not come up"
        time.sleep(0.2)


@pytest.fixture
def web_and_notify(home: Home) -> Iterator[Running]:
    """web and notify as real processes: notify owns the arm state."""
    port = free_port()
    raw = {"general": {"services": ["web", "notify"]},
           "web": {"port": port, "api_key": API_KEY}}
    config = parse_config(raw)
    bus = Bus(config, home)
    with pisentry_process("notify", home=home, config=raw) as notify, \
            pisentry_process("web", home=home, config=raw) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_web(base, proc, home)
        # notify's subscription to web settles a moment after both are up: a
        # command sent before that gets no answer (503) and is simply asked again
        deadline = time.monotonic() + 15
        while httpx.post(f"{base}/api/arm", headers=H, timeout=10).status_code != 200:
            assert notify.poll() is None, (home.root / "notify.out").read_text()
            assert time.monotonic() < deadline, "notify never confirmed an arm"
        yield Running(home, config, bus, base, proc)
    bus.close()


def test_a_ten_minute_mute_from_the_page_is_ten_minutes_everywhere(
        web_and_notify: Running) -> None:
    web = web_and_notify
    states = web.bus.subscriber(["notify"], [ArmState.TOPIC])
    time.sleep(0.3)
    asked = time.time()
    r = httpx.post(f"{web.base}/api/mute", json={"minutes": 10}, headers=H, timeout=10)
    assert r.status_code == 200, r.text
    until = r.json()["muted_until"]
    assert asked + 590 < until < asked + 610 and r.json()["changed_by"] == "web"
    # what notify announces, what it saved, and what the page shows: the same 10 minutes
    announced = wait_for(states, lambda h: isinstance(h, ArmState) and h.muted_until == until)
    assert announced.armed is True
    time.sleep(1.0)  # nothing re-applies the mute behind the page's back
    saved = json.loads((web.home.state_dir / "arming.json").read_text())
    assert saved["muted_until"] == until and saved["changed_by"] == "web"
    assert httpx.get(f"{web.base}/api/arm", headers=H).json()["muted_until"] == until
    assert httpx.post(f"{web.base}/api/mute", json={"minutes": 0}, headers=H,
                      timeout=10).json()["muted_until"] == 0


def test_disarm_is_one_command_from_web_and_the_state_comes_from_notify(
        web_and_notify: Running) -> None:
    web = web_and_notify
    from_web = web.bus.subscriber(["web"], [b"control/", b"state/"])
    from_notify = web.bus.subscriber(["notify"], [ArmState.TOPIC])
    time.sleep(0.3)
    r = httpx.post(f"{web.base}/api/disarm", headers=H, timeout=10)
    assert r.status_code == 200 and r.json()["armed"] is False
    state = wait_for(from_notify, lambda h: isinstance(h, ArmState) and not h.armed)
    assert state.changed_by == "web"
    time.sleep(0.5)
    sent = [m.header for m in from_web.read()]
    assert [type(h) for h in sent] == [Disarm] and sent[0].source == "web"
    assert json.loads((web.home.state_dir / "arming.json").read_text())["armed"] is False


def test_arming_without_notify_says_so_and_changes_nothing(web: Running) -> None:
    r = httpx.post(f"{web.base}/api/disarm", headers=H, timeout=10)
    assert r.status_code == 503 and "notify" in r.json()["detail"]
    assert httpx.get(f"{web.base}/api/arm", headers=H).json()["armed"] is True
    assert not (web.home.state_dir / "arming.json").exists()


def wait_for(sub: Subscriber, pred: Callable[[Header], bool], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in sub.recv(0.1):
            if pred(m.header):
                return m.header
    raise AssertionError("timed out waiting for a message")


def test_follows_state_heartbeats_and_events_from_other_services(web: Running) -> None:
    notify = web.bus.publisher("notify")
    detect = web.bus.publisher("detect")
    capture = web.bus.publisher("capture")
    with ws_connect(f"ws://{web.base[7:]}/ws/events", additional_headers=H,
                    open_timeout=5) as ws:
        assert json.loads(ws.recv(5))["topic"] == "state"  # the current state first
        time.sleep(0.5)  # let the subscriptions settle (a late joiner loses messages)
        for _ in range(3):
            capture.publish(Heartbeat, ts=time.time(), service="capture", pid=1234,
                            started=time.time(), status="ok", counters={"fps": 15.0})
            time.sleep(0.2)
        detect.publish(Motion, ts=time.time(), event_id="e42", phase="start",
                       labels=["person"])
        notify.publish(ArmState, ts=time.time(), armed=False, changed_by="telegram")
        seen = {}
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            item = json.loads(ws.recv(5))
            seen[item["topic"]] = item
    assert seen["motion"]["event_id"] == "e42" and seen["motion"]["labels"] == ["person"]
    assert seen["state"]["armed"] is False and seen["state"]["changed_by"] == "telegram"
    status = web.status()
    assert status["armed"]["armed"] is False
    capture_row = next(r for r in status["services"]["cam1"] if r["service"] == "capture")
    assert capture_row["alive"] and capture_row["counters"]["fps"] == 15.0


def test_websocket_live_is_paced_by_acks(web: Running) -> None:
    with FramePump(web.bus), ws_connect(f"ws://{web.base[7:]}/ws/live?camera=cam1",
                                         additional_headers=H, open_timeout=5) as ws:
        first = ws.recv(5)
        assert isinstance(first, bytes) and first[:2] == b"\xff\xd8"
        # no ack: nothing more may come, however many frames arrive meanwhile
        with pytest.raises(TimeoutError):
            ws.recv(0.8)
        ws.send("ack")
        second = ws.recv(5)
        assert second[:2] == b"\xff\xd8" and second != first


def test_unauthenticated_websocket_is_refused(web: Running) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as err, ws_connect(f"ws://{web.base[7:]}/ws/live",
                                                         open_timeout=5):
        pass
    assert err.value.response.status_code == 401


def test_sigterm_stops_within_two_seconds(web: Running) -> None:
    with httpx.Client(headers=H, timeout=10) as c, c.stream("GET", f"{web.base}/stream.mjpg"):
        t0 = time.monotonic()
        web.proc.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
        code = web.proc.wait(5)  # type: ignore[attr-defined]
    assert code == 0 and time.monotonic() - t0 < 2.0


@contextlib.contextmanager
def h264_viewer(web: Running, send: Callable[[int], None]) -> Iterator[ClientConnection]:
    """A viewer on /ws/h264 while ``send(i)`` publishes frame i every 100 ms, as
    capture would; the pump starts first so the socket has video to wait for."""
    stop = threading.Event()

    def pump() -> None:
        i = 0
        while not stop.is_set():
            send(i)
            i += 1
            time.sleep(0.1)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        with ws_connect(f"ws://{web.base[7:]}/ws/h264?camera=cam1", additional_headers=H,
                        open_timeout=5, max_size=2**22) as ws:
            yield ws
    finally:
        stop.set()
        thread.join(2)


def test_h264_live_over_websocket_is_the_cameras_own_video(web: Running) -> None:
    """h264 packets as capture publishes them, out as fMP4 a browser can append."""
    import io

    import av

    from common.messages import VideoPacket
    from services.capture.encoder import H264Encoder

    video = web.bus.publisher("video")
    enc = H264Encoder(640, 480, 10, keyframe_interval=1.0)

    def send(i: int) -> None:
        img = np.full((480, 640, 3), (i * 11) % 256, np.uint8)
        for au, key in enc.encode(img, i * 100_000):
            video.publish(VideoPacket, [au], ts=time.time(), pts=i * 100_000, keyframe=key,
                          width=640, height=480, fps=10.0)

    with h264_viewer(web, send) as ws:
        info = json.loads(ws.recv(5))
        assert info["codec"].startswith("avc1."), (web.home.root / "web.out").read_text()
        init = ws.recv(5)
        assert init[4:8] == b"ftyp"
        segments = [ws.recv(5) for _ in range(12)]
    assert all(s[4:8] == b"moof" for s in segments)
    with av.open(io.BytesIO(init + b"".join(segments))) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == 12 and frames[0].shape == (480, 640, 3)  # from a keyframe on


def test_a_verdict_from_the_page_is_written_by_record(home: Home) -> None:
    """web and record as real processes: the page asks, record writes its
    catalogue, the page answers with the event as the catalogue has it."""
    with CatalogueWriter(home.catalogue) as cat:  # an event record saved earlier
        cat.upsert_event("ev5", "cam1", time.time() - 60, labels=["person"])
    port = free_port()
    raw = {"general": {"services": ["web", "record"]},
           "web": {"port": port, "api_key": API_KEY}}
    with pisentry_process("record", home=home, config=raw), \
            pisentry_process("web", home=home, config=raw) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_web(base, proc, home)
        deadline = time.monotonic() + 15
        while True:  # until record's subscription to web has settled
            r = httpx.post(f"{base}/api/events/ev5/label", json={"verdict": "false"},
                           headers=H, timeout=10)
            if r.status_code != 503 or time.monotonic() > deadline:
                break
        assert r.status_code == 200 and r.json()["verdict"] == "false_alarm", r.text
        assert httpx.post(f"{base}/api/events/nope/label", json={"verdict": "real"},
                          headers=H).status_code == 404
    with CatalogueReader(home.catalogue) as cat:
        assert cat.event("ev5").verdict == "false_alarm"  # type: ignore[union-attr]


def test_h264_live_drops_a_replay_for_a_new_recorder(web: Running) -> None:
    """Capture replays its pre-roll whenever someone new subscribes to h264
    (an older stretch from a fresh encoder, ``replay``), then goes on at a
    keyframe: the viewer sees every live frame once, in order, none old."""
    import io

    import av

    from common.messages import VideoPacket
    from services.capture.encoder import H264Encoder

    video = web.bus.publisher("video")
    enc = [H264Encoder(320, 240, 10, keyframe_interval=1.0)]

    def picture(i: int) -> np.ndarray:
        return np.full((240, 320, 3), (i * 11) % 256, np.uint8)

    def send(i: int) -> None:
        replaying = i % 15 == 0 and i > 0
        if replaying:  # a newcomer: the last 10 frames again, from a fresh encoder
            enc[0] = H264Encoder(320, 240, 10, keyframe_interval=1.0)
            for j in range(i - 10, i):
                for au, key in enc[0].encode(picture(j), j * 100_000):
                    video.publish(VideoPacket, [au], ts=time.time(), pts=j * 100_000,
                                  keyframe=key, width=320, height=240, fps=10.0, replay=True)
        for au, key in enc[0].encode(picture(i), i * 100_000, keyframe=replaying):
            video.publish(VideoPacket, [au], ts=time.time(), pts=i * 100_000, keyframe=key,
                          width=320, height=240, fps=10.0)

    with h264_viewer(web, send) as ws:
        json.loads(ws.recv(5))
        init = ws.recv(5)
        segments = [ws.recv(5) for _ in range(35)]  # at least two replays' worth
    with av.open(io.BytesIO(init + b"".join(segments))) as c:
        levels = [float(f.to_ndarray(format="gray").mean()) for f in c.decode(video=0)]
    assert len(levels) == 35
    steps = [round(b - a) % 256 for a, b in itertools.pairwise(levels)]
    assert all(9 <= s <= 13 for s in steps), steps  # each the next frame: +11 grey levels
