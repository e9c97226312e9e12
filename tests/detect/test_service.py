"""The detect service as a real process on real ZMQ sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tomli_w

from common.bus import Bus
from common.config import parse_config
from common.messages import (
    ArmState,
    Brightness,
    Frame,
    Heartbeat,
    LiveFrame,
    Motion,
    MotionOverlay,
    Overlay,
    Snapshot,
    Tune,
    encode,
)
from common.paths import Home
from services.detect.evalset import Sequence, iter_luma

ROOT = Path(__file__).resolve().parents[2]


def yuv(luma: np.ndarray) -> bytes:
    h, w = luma.shape
    return np.vstack([luma, np.full((h // 2, w), 128, np.uint8)]).tobytes()


@pytest.fixture()
def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    home = Home(tmp_path).ensure()
    # A queue of a few frames, not capture's 2: zmq counts a pipe's reads in
    # batches, so a queue of 2 drops a frame sent right after a bigger one
    # even to a subscriber that keeps up; these tests send each frame once.
    raw = {"detect": {"mask_snapshot": True}, "bus": {"frames_hwm": 10}}
    (tmp_path / "config.toml").write_text(tomli_w.dumps(raw))
    config = parse_config(raw)
    bus = Bus(config, home)
    frames = bus.publisher("frames")
    ir = bus.publisher("ir")
    out = bus.subscriber(["detect"], [Motion.TOPIC, Snapshot.TOPIC, Heartbeat.TOPIC])
    env = dict(os.environ, PISENTRY_HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "common.cli", "detect"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:  # up once its heartbeat arrives
            if any(isinstance(m.header, Heartbeat) for m in out.recv(0.2)):
                break
        else:
            raise AssertionError("no heartbeat from detect")
        yield frames, ir, out, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        finally:
            if proc.poll() is None:
                proc.kill()
        bus.close()


def _processed(overlays, ts: float, got: list, out) -> None:  # type: ignore[no-untyped-def]
    """Wait (a while at most) for detect to have looked at the frame of
    ``ts``: its motion overlay says so. Detect keeps only the newest frame
    when it falls behind, as it should live; a test of which frame starts an
    event sends the next one once it is done with this one, however slow
    this machine is."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        got += out.read()
        if any(m.header.ts == ts for m in overlays.recv(0.01)):
            return


def _subscribed_to(pub, topic: bytes) -> None:  # type: ignore[no-untyped-def]
    """Wait for detect's subscription to ``topic`` to reach ``pub`` (what
    was sent before is lost, as to any late subscriber)."""
    deadline = time.monotonic() + 30
    while not pub.wanted(topic):
        assert time.monotonic() < deadline, f"detect did not subscribe to {topic!r}"
        time.sleep(0.05)


def _heartbeat_says(out, key: str, value: object) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(isinstance(m.header, Heartbeat) and m.header.counters[key] == value
               for m in out.recv(0.2)):
            return
    raise AssertionError(f"no heartbeat with {key} = {value!r}")


def _bad_frames_counted(out, n: int, got: list) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msgs = out.recv(0.2)
        got += msgs
        if any(isinstance(m.header, Heartbeat) and m.header.counters["bad_frames"] >= n
               for m in msgs):
            return
    raise AssertionError(f"detect did not count bad frame {n}")


@pytest.mark.parametrize("live_format", ["bgr24", "jpeg"])
def test_frames_in_motion_and_snapshot_out_bad_frame_dropped(service, trees: Sequence,
                                                             live_format: str,
                                                             tmp_path: Path) -> None:
    frames, _ir, out, proc = service
    lumas = list(iter_luma(trees))
    got: list = []
    sent_ts: dict[int, float] = {}
    bus = Bus(parse_config({}), Home(tmp_path))
    web = bus.publisher("web", track_subscribers=True)
    overlays = bus.subscriber(["detect"], [MotionOverlay.TOPIC], hwm=1000)
    _subscribed_to(web, Overlay.TOPIC)  # the endpoint is new: detect connects to it
    web.publish(Overlay, ts=time.time(), source="test", seconds=30)
    # A frame whose payload does not match its size is dropped, not fatal.
    # Each is counted before the next frame goes: detect keeps only the
    # newest frame of a topic waiting, and a good one would replace it.
    frames.publish(Frame, [b"\x00" * 100], ts=time.time(), width=160, height=120,
                   format="yuv420")
    _bad_frames_counted(out, 1, got)
    frames.publish(LiveFrame, [b"\x00" * 7], ts=time.time(), width=320, height=240,
                   format="bgr24")
    _bad_frames_counted(out, 2, got)
    # A frame said to follow -1 skipped camera frames: detection's timing
    # cannot count it (capture.lores_fps, Frame.skipped).
    frames.publish(Frame, [yuv(lumas[0])], ts=time.time(), width=160, height=120,
                   format="yuv420", skipped=-1)
    _bad_frames_counted(out, 3, got)
    for i in list(range(150, 200)) + list(range(200, 262)):
        ts = 1000.0 + i / 15
        sent_ts[i] = ts
        if i % 50 == 0:  # the overlay is asked for 30 s at most: again, as the tuner does
            web.publish(Overlay, ts=time.time(), source="test", seconds=30)
        frames.publish(Frame, [yuv(lumas[i])], ts=ts, width=160, height=120, format="yuv420")
        if i % 3 == 0:  # a bigger live view, as capture sends it
            bgr = cv2.resize(cv2.imread(str(trees.frames[i])), (320, 240))
            if live_format == "jpeg":  # an MJPEG camera's own JPEG, forwarded by capture
                payload = cv2.imencode(".jpg", bgr)[1].tobytes()
            else:
                payload = bgr.tobytes()
            frames.publish(LiveFrame, [payload], ts=ts, width=320, height=240,
                           format=live_format)
        _processed(overlays, ts, got, out)
    end, ts = time.time() + 30, 1020.0  # a deadline: the loop ends at the event's end
    while time.time() < end and not any(isinstance(m.header, Motion) and m.header.phase == "end"
                                        for m in got):
        ts += 0.2  # capture time goes on: the quiet time elapses
        frames.publish(Frame, [yuv(lumas[280])], ts=ts, width=160, height=120,
                       format="yuv420")
        got += out.recv(0.1)
    bus.close()
    assert proc.poll() is None, "detect died"
    motions = [m.header for m in got if isinstance(m.header, Motion)]
    starts = [m for m in motions if m.phase == "start"]
    assert len(starts) == 1, motions
    start = starts[0]
    trigger = next(i for i, ts in sent_ts.items() if ts == start.ts)
    assert 243 <= trigger <= 245
    assert start.boxes and all(0 <= v <= 1 for b in start.boxes for v in b)
    assert start.area > 0 and start.alert
    assert any(m.phase == "end" and m.event_id == start.event_id for m in motions)
    snaps = {m.header.kind: m for m in got if isinstance(m.header, Snapshot)}
    event = snaps["event"]
    assert event.header.event_id == start.event_id
    img = cv2.imdecode(np.frombuffer(event.payload[0], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (240, 320, 3)  # the live view, bigger than the lores frame
    assert (event.header.width, event.header.height) == (320, 240)
    assert len(event.payload) == 2  # the motion mask rides along as a second part
    mask = cv2.imdecode(np.frombuffer(event.payload[1], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (120, 160) and (mask > 128).any()
    beats: list = []
    deadline = time.monotonic() + 10
    while not beats and time.monotonic() < deadline:  # the next heartbeat
        beats = [m.header for m in out.recv(0.2) if isinstance(m.header, Heartbeat)]
    assert beats and beats[-1].counters["bad_frames"] == 3


def test_ir_switch_rebases_without_an_event(service, trees: Sequence) -> None:
    frames, ir, out, _proc = service
    lumas = list(iter_luma(trees, "ir_switch"))
    n = len(lumas)
    got: list = []
    ir.publish(Brightness, ts=time.time(), level=0.5, ir_level=0.0)
    for i in range(60, 200):
        if i == n // 3:
            ir.publish(Brightness, ts=time.time(), level=0.1, ir_level=1.0)
        frames.publish(Frame, [yuv(lumas[i])], ts=1000 + i / 15, width=160, height=120,
                       format="yuv420")
        got += out.recv(1 / 60)
    got += out.recv(1.2)
    assert not [m for m in got if isinstance(m.header, Motion)]
    beats = [m.header for m in got if isinstance(m.header, Heartbeat)]
    assert beats[-1].counters["ir_rebases"] == 1


def test_disarmed_watches_nothing_until_armed_again(service, trees: Sequence, tmp_path: Path
                                                    ) -> None:
    frames, _ir, out, _proc = service
    bus = Bus(parse_config({}), Home(tmp_path))
    notify = bus.publisher("notify", track_subscribers=True)  # the owner of the arm state
    lumas = list(iter_luma(trees))

    def walk_through() -> list:
        got: list = []
        for i in range(200, 262):
            frames.publish(Frame, [yuv(lumas[i])], ts=time.time(), width=160, height=120,
                           format="yuv420")
            got += out.recv(1 / 30)
        return [m.header for m in got + out.recv(0.5) if isinstance(m.header, Motion)]

    try:
        _subscribed_to(notify, ArmState.TOPIC)  # the endpoint is new: detect connects to it
        notify.publish(ArmState, ts=time.time(), armed=False, changed_by="web")
        _heartbeat_says(out, "paused", True)
        assert walk_through() == []
        notify.publish(ArmState, ts=time.time(), armed=True, changed_by="web")
        _heartbeat_says(out, "paused", False)
        for i in range(150, 200):  # a fresh background after re-arming
            frames.publish(Frame, [yuv(lumas[i])], ts=time.time(), width=160, height=120,
                           format="yuv420")
            out.recv(1 / 60)
        assert any(m.phase == "start" for m in walk_through())
    finally:
        bus.close()


def test_tuning_applies_from_the_next_frame_and_overlay_comes_while_asked(
        service, trees: Sequence, tmp_path: Path) -> None:
    frames, _ir, out, proc = service
    bus = Bus(parse_config({}), Home(tmp_path))
    web = bus.publisher("web", track_subscribers=True)
    overlays = bus.subscriber(["detect"], [MotionOverlay.TOPIC])
    lumas = list(iter_luma(trees))

    def walk_through(first: int = 150) -> list:
        got: list = []
        for i in range(first, 262):
            frames.publish(Frame, [yuv(lumas[i])], ts=time.time(), width=160, height=120,
                           format="yuv420")
            got += out.recv(1 / 30) + overlays.recv(0)
        got += out.recv(0.5) + overlays.recv(0.2)
        return [m for m in got if isinstance(m.header, Motion | MotionOverlay)]

    try:
        _subscribed_to(web, Tune.TOPIC)  # the endpoint is new: detect connects to it
        assert not [m for m in walk_through() if isinstance(m.header, MotionOverlay)], \
            "an overlay nobody asked for"
        # Nothing moves enough at the top threshold, and the overlay says so.
        web.publish(Tune, ts=time.time(), source="test", threshold=255, min_area=0.002,
                    frames_to_start=2)
        web.publish(Overlay, ts=time.time(), source="test", seconds=20)
        out.recv(0.3)
        got = walk_through()
        shown = [m for m in got if isinstance(m.header, MotionOverlay)]
        assert len(shown) > 50
        assert all(m.header.min_pixel_delta_trigger == 255 for m in shown)
        assert not [m for m in got if isinstance(m.header, Motion) and m.header.phase == "start"]
        assert all(not np.unpackbits(np.frombuffer(m.payload[0], np.uint8)).any()
                   for m in shown[-30:])
        # Back to the usual threshold: the person walking through opens an event,
        # and the overlay shows moving pixels where the boxes are.
        web.publish(Tune, ts=time.time(), source="test", threshold=25, min_area=0.002,
                    frames_to_start=2)
        out.recv(0.3)
        got = walk_through(first=200)
        assert any(isinstance(m.header, Motion) and m.header.phase == "start" for m in got)
        moving = [m for m in got if isinstance(m.header, MotionOverlay) and m.header.moving]
        assert moving and moving[-1].header.boxes
        o = moving[-1]
        bits = np.unpackbits(np.frombuffer(o.payload[0], np.uint8))[:o.header.width
                                                                      * o.header.height]
        assert (o.header.width, o.header.height) == (160, 120) and bits.sum() > 20
        # A command out of range is counted and dropped; detect carries on.
        bad = encode(Tune(camera="cam1", seq=0, ts=0.0, source="test", threshold=25,
                          min_area=0.002, frames_to_start=2))
        bad[1] = bad[1].replace(b"frames_to_start\x02", b"frames_to_start\x00")
        web._socket.send_multipart(bad)
        deadline = time.time() + 3
        beat = None
        while time.time() < deadline and not (beat and beat.counters["malformed"]):
            beats = [m.header for m in out.recv(0.3) if isinstance(m.header, Heartbeat)]
            beat = beats[-1] if beats else beat
        assert proc.poll() is None
        assert beat is not None and beat.counters["malformed"] == 1
        assert beat.counters["tunings"] == 2
        # Overlays stop when asked to.
        web.publish(Overlay, ts=time.time(), source="test", seconds=0)
        out.recv(0.3)
        overlays.recv(0.2)
        assert not [m for m in walk_through(first=240) if isinstance(m.header, MotionOverlay)]
    finally:
        bus.close()


def _counters(out, until, seconds: float = 20):  # type: ignore[no-untyped-def]
    """The counters of the first heartbeat from detect for which ``until`` holds."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        for m in out.recv(0.2):
            if isinstance(m.header, Heartbeat):
                last = m.header.counters
                if until(last):
                    return last
    raise AssertionError(f"no heartbeat from detect with the awaited counters; last {last}")


def test_frames_detection_never_took_still_count_as_camera_time(service, trees: Sequence
                                                                ) -> None:
    """A detector that falls behind keeps the newest frame (and a full queue
    drops more): the frames it never analysed still passed in the camera's
    time, so what it does analyse stands for them too, as for the frames
    capture let go (``skipped``: a 30 fps camera analysed at 15)."""
    frames, _ir, out, _proc = service
    luma = next(iter(iter_luma(trees)))
    payload = yuv(luma)
    deadline = time.monotonic() + 20
    while True:  # until detect takes a frame: it is subscribed, nothing after is lost to that
        frames.publish(Frame, [payload], ts=time.time(), width=160, height=120,
                       format="yuv420", skipped=1)
        try:
            _counters(out, lambda c: c["frames"] >= 1, seconds=1)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "detect never took a frame"
    time.sleep(1.5)  # a primer still in flight lands before the baseline
    base = _counters(out, lambda c: True)
    sent = 300
    for _ in range(sent):  # back to back: far faster than detect analyses them
        frames.publish(Frame, [payload], ts=time.time(), width=160, height=120,
                       format="yuv420", skipped=1)
    time.sleep(0.5)
    frames.publish(Frame, [payload], ts=time.time(), width=160, height=120,
                   format="yuv420", skipped=1)  # the last one, once detect has caught up
    want = base["camera_frames"] + 2 * (sent + 1)
    got = _counters(out, lambda c: c["camera_frames"] >= want)
    assert got["camera_frames"] == want
    assert got["frames"] - base["frames"] < sent + 1, "detect kept up: nothing was dropped"
