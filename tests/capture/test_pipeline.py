"""`pisentry run` as a user runs it: real processes under supervisord, real sockets."""

import itertools
import os
import shutil
import signal
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import av
import pytest
import zmq

from common.bus import RESTARTED, Bus
from common.config import parse_config
from common.messages import Frame, Heartbeat, VideoPacket
from services.capture.sources import SYNTHETIC_FPS, SYNTHETIC_SIZE
from tests.support import new_home, running_pipeline

pytestmark = pytest.mark.slow


@contextmanager
def _subscribed(home, raw=None):
    """Frames and h264 subscribers, closed even when the test fails (an open
    socket would hang its context's garbage collection)."""
    bus = Bus(parse_config(raw or {}), home, context=zmq.Context())
    try:
        yield (bus, bus.subscriber(["frames"], [Frame.TOPIC], hwm=1000),
               bus.subscriber(["video"], [VideoPacket.TOPIC], hwm=1000))
    finally:
        bus.close()
        bus.context.destroy(linger=0)


def _wait_first(sub, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sub.recv(0.1)
        if got:
            return got
    raise AssertionError(f"nothing on the bus within {timeout} s")


def test_default_run_streams_frames_at_fps_and_decodable_h264():
    # Nothing set: the synthetic camera's own size and rate.
    fps, gop_seconds = SYNTHETIC_FPS, parse_config({}).capture.keyframe_interval
    with running_pipeline() as pipeline, _subscribed(pipeline.home) as (_, frames, video):
        _wait_first(frames, 60)  # how soon is a bench figure (bench/), not this test's
        lores, packets = [], []
        end = time.monotonic() + 6
        while time.monotonic() < end:
            lores += frames.recv(0.02)
            packets += video.read()
    # The camera's period between most frames (a frame late on a loaded
    # machine makes one interval longer, the pacer does not burst to catch up).
    period = _median_period(lores)
    assert abs(1 / period - fps) <= 0.1 * fps, f"{1 / period:.2f} fps, configured {fps}"
    assert frames.stats.gaps == 0
    # The pre-roll capture keeps for the recorder, replayed to each newcomer
    # (us, the recorder subscribing for a clip), first: the live video after it.
    packets = [p for p in packets if not p.header.replay]
    first_key = next(i for i, p in enumerate(packets) if p.header.keyframe)
    packets = packets[first_key:]
    keys = [i for i, p in enumerate(packets) if p.header.keyframe]
    assert len(keys) >= 4, keys
    # A keyframe every keyframe_interval of the frames' own timestamps, most
    # GOPs that long (a newcomer, such as the recorder, gets one at once).
    assert abs(packets[0].header.fps - fps) <= 0.1 * fps, packets[0].header.fps
    _assert_keyframes_every(packets, keys, gop_seconds, fps, others_join=True)
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for p in packets:
        decoded += decoder.decode(av.Packet(bytes(p.payload[0])))
    assert len(decoded) >= len(packets) - 1  # the last may still be inside the decoder
    assert (decoded[0].width, decoded[0].height) == SYNTHETIC_SIZE


SMALL = {"general": {"services": ["capture"]},
         "capture": {"width": 320, "height": 240, "fps": 10}}


def test_kill_9_capture_comes_back_and_subscribers_see_the_gap():
    with running_pipeline(SMALL) as pipeline:
        pipeline.wait_healthy(30)
        with _subscribed(pipeline.home, SMALL) as (_, frames, _video):
            resumed, _killed = _kill_capture_and_wait(pipeline, frames)
        # How soon is a bench figure (bench/faults.py); here that it comes back.
        assert resumed is not None, pipeline.output()
        assert frames.stats.restarts == 1


def _kill_capture_and_wait(pipeline, frames):
    """Kill -9 capture; when (monotonic) a frame of its next life arrived."""
    _wait_first(frames, 10)
    os.kill(pipeline.service_pid("capture"), signal.SIGKILL)
    killed = time.monotonic()
    while time.monotonic() < killed + 60:
        if any(m.gap == RESTARTED for m in frames.recv(0.05)):
            return time.monotonic(), killed
    return None, killed


def _rss_mb(pid="self"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_stalled_subscriber_does_not_slow_another_and_stays_bounded():
    """Two subscribers (raw frames, h264) never read: the reader beside them
    gets every frame capture makes as it makes it, and neither capture nor
    the stalled sockets hold more than their high-water marks."""
    video_hwm = 30  # the smallest allowed: the stalled h264 queue is full within the test
    raw = {"general": {"services": ["capture"]}, "capture": {"fps": 15},
           "bus": {"video_hwm": video_hwm}}
    with running_pipeline(raw) as pipeline:
        pipeline.wait_healthy(30)
        with _subscribed(pipeline.home, raw) as (bus, reader, video):
            beats = bus.subscriber(["capture"], [Heartbeat.TOPIC], hwm=1000)
            stalled = bus.subscriber(["frames"], [b"frame/"], latest_only=True)
            stalled_video = bus.subscriber(["video"], [VideoPacket.TOPIC])
            seqs, made, rss, capture_rss = _read_while_others_stall(pipeline, reader, video,
                                                                    beats)
            held, held_video = _read_all(stalled), _read_all(stalled_video)
            _read_for(1, stalled, stalled_video)  # the next ones say how many were lost
    # Every frame capture made from the window's first heartbeat to its last
    # reached the reader (nothing lost, nothing still on its way), whatever
    # rate this machine let capture make them at.
    assert reader.stats.gaps == 0 and reader.stats.restarts == 0, reader.stats
    assert made[1] - made[0] >= 10, made  # capture kept making frames
    assert set(range(made[0], made[1])) <= set(seqs), (made, seqs[0], seqs[-1])
    # The stalled sockets held a bounded few, the oldest, and lost the rest
    # (seq gaps), among them every frame of the window: frames_hwm on both
    # sides (2 + 2) and video_hwm (30 + 30), plus what the kernel's socket
    # buffers hold.
    window = made[1] - made[0]
    assert len(held) + stalled.stats.stale <= 8, (len(held), stalled.stats)
    assert stalled.stats.gaps >= window, (window, stalled.stats)
    assert len(held_video) <= 3 * video_hwm, len(held_video)
    assert stalled_video.stats.gaps >= window - len(held_video), (window, stalled_video.stats)
    # The same bound seen as memory, from capture in steady state (the h264
    # encoder running): 10 s of unread live + lores frames would be ~100 MB.
    assert rss[1] - rss[0] < 30, rss
    assert capture_rss[1] - capture_rss[0] < 30, capture_rss


def _read_all(sub):
    out, more = [], sub.read()
    while more:
        out += more
        more = sub.read()
    return out


def _read_for(seconds, *subs):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for sub in subs:
            sub.recv(0.01)


def _read_while_others_stall(pipeline, reader, video, beats, seconds=10):
    """Read ``reader`` and ``video`` for ``seconds`` while the stalled
    subscribers are left alone: the lores seq numbers read, how many frames
    capture had made at the window's first and last heartbeat, and RSS (MB)
    of this process and capture before and after."""
    _wait_first(video, 60)  # the h264 subscribers made capture start its encoder
    settle = time.monotonic() + 3  # x264's buffers, PyAV's libraries: made by now
    while time.monotonic() < settle:
        reader.recv(0.02)
        video.read()
    capture_pid = pipeline.service_pid("capture")
    rss_before, capture_before = _rss_mb(), _rss_mb(capture_pid)
    _read_all(beats)
    seqs, counts = [], []
    end = time.monotonic() + seconds
    # Headers only are kept: a payload held would be memory this test counts.
    while time.monotonic() < end or not counts or max(seqs, default=-1) < counts[-1] - 1:
        assert time.monotonic() < end + 30, f"capture stopped: {counts} made, {seqs[-1:]} read"
        seqs += [m.header.seq for m in reader.recv(0.02)]
        video.read()
        if time.monotonic() < end:
            counts += [m.header.counters["frames"] for m in beats.read()
                       if m.header.service == "capture"]
    rss_after, capture_after = _rss_mb(), _rss_mb(capture_pid)
    assert len(counts) >= 2, counts
    # A frame's lores seq is how many capture made before it (lores_fps unset).
    return seqs, (counts[0], counts[-1]), (rss_before, rss_after), (capture_before,
                                                                      capture_after)


@contextmanager
def _mjpeg_camera(size=(640, 480), fps=15.0, frames=slice(0, 30)):
    import cv2

    from tests.capture.mjpeg_server import MjpegCamera
    from tests.support import EVAL

    files = sorted((EVAL / "wallflower_wavingtrees").glob("b*.bmp"))[frames]
    if not files:
        pytest.skip("shared/eval footage not present")
    jpegs = [cv2.imencode(".jpg", cv2.resize(cv2.imread(str(f)), size),
                          [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in files]
    camera = MjpegCamera(jpegs, fps=fps).start()
    try:
        yield camera, jpegs
    finally:
        camera.stop()


def _capture_log(pipeline):
    return (pipeline.home.log_dir / "capture.log").read_text()


def test_an_mjpeg_camera_is_forwarded_and_decoded_only_as_far_as_needed():
    with _mjpeg_camera() as (camera, jpegs):
        raw = {"general": {"services": ["capture"]},
               "capture": {"source": "url", "url": camera.url, "width": 640, "height": 480,
                           "fps": 15, "reconnect_max_seconds": 1}}
        with running_pipeline(raw) as pipeline:
            pipeline.wait_healthy(30)
            bus = Bus(parse_config(raw), pipeline.home, context=zmq.Context())
            try:
                frames = bus.subscriber(["frames"], [Frame.TOPIC, b"frame/live/"], hwm=1000)
                got = []
                end = time.monotonic() + 3
                while time.monotonic() < end:
                    got += frames.recv(0.05)
                # Nobody subscribed to h264 yet: no encoder ran.
                assert "h264 encoder started" not in _capture_log(pipeline)
                video = bus.subscriber(["video"], [VideoPacket.TOPIC], hwm=1000)
                packets = []
                deadline = time.monotonic() + 60  # the encoder's start is a bench figure
                while len(packets) < 31 and time.monotonic() < deadline:
                    packets += video.recv(0.05)
                video.close()
                # Capture notices the unsubscription on its next frame.
                deadline = time.monotonic() + 30
                while "encoder stopped" not in _capture_log(pipeline) and \
                        time.monotonic() < deadline:
                    frames.recv(0.05)
                log = _capture_log(pipeline)
            finally:
                bus.close()
                bus.context.destroy(linger=0)
    lores = [m for m in got if m.header.TOPIC == Frame.TOPIC]
    live = [m for m in got if m.header.TOPIC != Frame.TOPIC]
    assert len(lores) >= 30
    assert {(m.header.format, m.header.width, m.header.height) for m in lores} == \
        {("gray", 320, 240)}
    # The live view is the camera's own JPEG, byte for byte, at live_fps.
    assert live and all(m.header.format == "jpeg" for m in live)
    assert all(bytes(m.payload[0]) in jpegs for m in live)
    assert {(m.header.width, m.header.height) for m in live} == {(640, 480)}
    # h264 started for the subscriber, on a keyframe, and decodes whole.
    assert packets and packets[0].header.keyframe, [p.header.keyframe for p in packets[:3]]
    decoder = av.CodecContext.create("h264", "r")
    decoded = []
    for p in packets:
        decoded += decoder.decode(av.Packet(bytes(p.payload[0])))
    assert len(decoded) >= len(packets) - 1 >= 30
    assert (decoded[0].width, decoded[0].height) == (640, 480)
    assert "h264 encoder started: 640x480" in log
    assert "nobody subscribes to h264: encoder stopped" in log


def _read_stream(pipeline, raw, seconds):
    with _subscribed(pipeline.home, raw) as (_, frames, video):
        _wait_first(video, 60)
        lores, packets = [], []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            lores += frames.recv(0.02)
            packets += video.read()
    # The pre-roll replayed for a new subscriber comes first: the live video from its keyframe.
    packets = [p for p in packets if not p.header.replay]
    packets = packets[next(i for i, p in enumerate(packets) if p.header.keyframe):]
    return lores, packets


def _assert_keyframes_every(packets, keys, seconds, fps, others_join=False):
    """Keyframes ``seconds`` apart in the frames' timestamps: none early by
    more than half a frame (unless ``others_join``: each new subscriber gets
    one at once), most GOPs within a frame and a half of it."""
    gaps = [(packets[b].header.pts - packets[a].header.pts) / 1e6
            for a, b in itertools.pairwise(keys)]
    assert others_join or min(gaps) >= seconds - 0.6 / fps, gaps
    assert abs(statistics.median(gaps) - seconds) <= 1.5 / fps, gaps


def test_keyframes_follow_the_real_rate_of_a_camera_that_says_none():
    """An MJPEG camera says no rate: h264 wanted from its first frame is
    encoded before capture has measured one (it assumes 15 fps). The camera
    sends 30: keyframes stay keyframe_interval apart in time, not 15 frames
    (half a second) apart."""
    with _mjpeg_camera(size=(320, 240), fps=30) as (camera, _):
        raw = {"general": {"services": ["capture"]},
               "capture": {"source": "url", "url": camera.url, "keyframe_interval": 1.0,
                           "reconnect_max_seconds": 1}}
        home = new_home()
        with _subscribed(home, raw) as (_, _frames, video), \
                running_pipeline(raw, home=home) as pipeline:
            pipeline.wait_healthy(30)
            _wait_first(video, 60)
            packets = []
            end = time.monotonic() + 5
            while time.monotonic() < end:
                packets += video.recv(0.05)
    packets = packets[next(i for i, p in enumerate(packets) if p.header.keyframe):]
    assert packets[0].header.fps == 15.0, "the encoder started before a rate was measured"
    period = _median_period(packets, lambda h: h.pts / 1e6)
    assert 0.8 / 30 <= period <= 1.2 / 30, period
    keys = [i for i, p in enumerate(packets) if p.header.keyframe]
    assert len(keys) >= 3, keys
    _assert_keyframes_every(packets, keys, 1.0, 30)


def _median_period(messages, clock=lambda h: h.ts):
    """Seconds between most consecutive messages: robust to a few late ones."""
    return statistics.median(clock(b.header) - clock(a.header)
                             for a, b in itertools.pairwise(messages))


def _rate(messages):
    return (len(messages) - 1) / (messages[-1].header.ts - messages[0].header.ts)


def _first_decoded(packets):
    decoder = av.CodecContext.create("h264", "r")
    return next(f for p in packets for f in decoder.decode(av.Packet(bytes(p.payload[0]))))


def test_unset_size_and_rate_follow_the_camera_and_detection_can_run_below_it():
    """Only source and url set: a 640x480 camera at 30 fps is recorded at
    640x480 and 30 fps (not upscaled to 1280x720, nor capped at 15)."""
    with _mjpeg_camera(size=(640, 480), fps=30) as (camera, _):
        raw = {"general": {"services": ["capture"]},
               "capture": {"source": "url", "url": camera.url, "lores_fps": 5,
                           "reconnect_max_seconds": 1}}
        with running_pipeline(raw) as pipeline:
            pipeline.wait_healthy(30)
            lores, packets = _read_stream(pipeline, raw, 4)
            log = _capture_log(pipeline)
    assert 4 <= _rate(lores) <= 6, _rate(lores)  # detection at lores_fps
    # Each says how many camera frames went by unsent (detection counts them).
    assert statistics.median(m.header.skipped for m in lores) == 5, [
        m.header.skipped for m in lores]
    # The video at the camera's rate (30 fps: not capped at 15), by the
    # period between most frames: a loaded machine delays a few.
    period = _median_period(packets, lambda h: h.pts / 1e6)
    assert period <= 1.2 / 30, period
    assert {(m.header.width, m.header.height) for m in lores} == {(320, 240)}
    first = _first_decoded(packets)
    assert (first.width, first.height) == (640, 480)
    assert "larger than" not in log and "ERROR" not in log, log


def test_a_15_fps_camera_sends_detection_every_frame_under_the_default_cap():
    """capture.lores_fps is 15 unless set: a 15 fps camera's frames all go
    to detection (a network camera's jitter does not make the cap drop any),
    each saying no camera frame went by unsent."""
    with _mjpeg_camera(size=(640, 480), fps=15) as (camera, _):
        raw = {"general": {"services": ["capture"]},
               "capture": {"source": "url", "url": camera.url, "reconnect_max_seconds": 1}}
        with running_pipeline(raw) as pipeline:
            pipeline.wait_healthy(30)
            lores, _ = _read_stream(pipeline, raw, 4)
    skipped = [m.header.skipped for m in lores]
    # Every frame, by the period between most (a loaded machine delays a few).
    assert 0.8 / 15 <= _median_period(lores) <= 1.2 / 15, _median_period(lores)
    assert statistics.median(skipped) == 0 and sum(s > 0 for s in skipped) <= 2, skipped


def test_a_size_larger_than_the_camera_is_refused_in_one_line():
    from tests.support import new_home, pisentry_process

    with _mjpeg_camera(size=(320, 240), fps=15) as (camera, _):
        home = new_home()
        raw = {"capture": {"source": "url", "url": camera.url, "width": 640, "height": 480}}
        with pisentry_process("capture", home=home, config=raw) as proc:
            code = proc.wait(timeout=30)
        out = (home.root / "capture.out").read_text()
        shutil.rmtree(home.root, ignore_errors=True)
    assert code == 2, out  # a setup error: supervisord does not restart it, shows FATAL
    lines = [line for line in out.splitlines() if "larger than" in line]
    assert len(lines) == 1 and lines[0].endswith(
        "capture cannot start: capture.width/height 640x480 is larger than the camera's "
        "320x240: pisentry only scales down; leave them unset to follow the camera"), out
    assert "Traceback" not in out


def test_a_camera_back_from_a_reconnect_smaller_than_the_set_size_is_refused_then():
    """640x480 set for a 640x480 camera that restarts in a 320x240 mode:
    capture does not upscale the new mode, it stops with the same one line."""
    import cv2
    import numpy as np

    from tests.capture.mjpeg_server import MjpegCamera
    from tests.support import new_home, pisentry_process

    with _mjpeg_camera(size=(640, 480), fps=15) as (camera, jpegs):
        home = new_home()
        raw = {"capture": {"source": "url", "url": camera.url, "width": 640, "height": 480,
                           "reconnect_max_seconds": 1}}
        small = [cv2.imencode(".jpg", cv2.resize(cv2.imdecode(np.frombuffer(j, np.uint8),
                                                                cv2.IMREAD_COLOR), (320, 240)))[1]
                 .tobytes() for j in jpegs[:5]]
        with pisentry_process("capture", home=home, config=raw) as proc:
            out = home.root / "capture.out"
            deadline = time.monotonic() + 30
            while camera.served < 30 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert proc.poll() is None, out.read_text()  # streaming at the set size
            port = camera.port
            camera.stop()
            again = MjpegCamera(small, fps=15, port=port).start()
            try:
                code = proc.wait(timeout=30)
            finally:
                again.stop()
        text = out.read_text()
        shutil.rmtree(home.root, ignore_errors=True)
    assert camera.served >= 30 and again.served >= 1, text
    assert code == 2, text
    lines = [line for line in text.splitlines() if "larger than" in line]
    assert len(lines) == 1 and lines[0].endswith(
        "capture cannot start: capture.width/height 640x480 is larger than the camera's "
        "320x240: pisentry only scales down; leave them unset to follow the camera"), text


def test_fps_halves_a_faster_camera_with_keyframes_in_seconds_and_lores_keeps_its_aspect():
    """A 720x480 camera at 30 fps with fps = 15: every other frame is
    processed, keyframes keep keyframe_interval in seconds, and detection's
    frame is 720x480 scaled into 320x240 (320x212), not squeezed to 320x240."""
    with _mjpeg_camera(size=(720, 480), fps=30) as (camera, _):
        raw = {"general": {"services": ["capture"]},
               "capture": {"source": "url", "url": camera.url, "fps": 15,
                           "keyframe_interval": 1.0, "reconnect_max_seconds": 1}}
        with running_pipeline(raw) as pipeline:
            pipeline.wait_healthy(30)
            lores, packets = _read_stream(pipeline, raw, 5)
    # Every other frame, by the period between most (a loaded machine delays a few).
    assert 0.8 * 2 / 30 <= _median_period(lores) <= 1.2 * 2 / 30, _median_period(lores)
    period = _median_period(packets, lambda h: h.pts / 1e6)
    assert 0.8 * 2 / 30 <= period <= 1.2 * 2 / 30, period
    # A keyframe every second of the frames processed.
    keys = [i for i, p in enumerate(packets) if p.header.keyframe]
    assert len(keys) >= 3, keys
    assert abs(packets[0].header.fps - 15) <= 2, packets[0].header.fps
    _assert_keyframes_every(packets, keys, 1.0, 15)
    assert {(m.header.width, m.header.height) for m in lores} == {(320, 212)}
    first = _first_decoded(packets)
    assert (first.width, first.height) == (720, 480)


def _decoded_frames(path):
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_an_mjpeg_camera_with_nothing_to_record_runs_no_encoder():
    """Capture keeps the pre-roll as the camera's JPEGs and tells the
    recorder so: the recorder drops its h264 subscription, the encoder stops
    and stays stopped while no clip is written."""
    from common.messages import Heartbeat

    with _mjpeg_camera(fps=15, frames=slice(0, 1)) as (camera, _):  # a still picture
        raw = {"general": {"services": ["capture", "detect", "record"]},
               "capture": {"source": "url", "url": camera.url, "width": 640, "height": 480,
                           "fps": 15, "reconnect_max_seconds": 1},
               "record": {"rec_sec_before": 2.0}}
        with running_pipeline(raw) as pipeline:
            pipeline.wait_healthy(30)
            bus = Bus(parse_config(raw), pipeline.home, context=zmq.Context())
            try:
                beats = bus.subscriber(["capture", "record"], [Heartbeat.TOPIC])
                got: dict[str, list] = {"capture": [], "record": []}
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not (
                        len(got["capture"]) >= 4 and got["record"]
                        and not any(c["encoding"] for c in got["capture"][-4:])):
                    for m in beats.recv(0.2):
                        got[m.header.service].append(m.header.counters)
                log = _capture_log(pipeline)
            finally:
                bus.close()
                bus.context.destroy(linger=0)
    capture, record = got["capture"], got["record"]
    assert record[-1]["on_demand"] and not record[-1]["video"], record[-1]
    # Four heartbeats in a row (3 s and more) without an encoder, while the
    # pre-roll is held as JPEGs: all of rec_sec_before + 2 s of it.
    assert len(capture) >= 4 and not any(c["encoding"] for c in capture[-4:]), capture
    assert capture[-1]["preroll_s"] >= 3.5 and capture[-1]["frames"] > 60, capture[-1]
    # A recorder that learns of the JPEG pre-roll before it subscribes never
    # starts the encoder; one that subscribed first stops it again.
    if "h264 encoder started" in log:
        after_last_start = log[log.rindex("h264 encoder started"):]
        assert "nobody subscribes to h264: encoder stopped" in after_last_start, log


def test_an_mjpeg_camera_keeps_no_pre_roll_when_nothing_records():
    """capture,detect only: the seconds of JPEGs are memory nobody would use,
    and VideoSupply says there is no pre-roll to give; nor is PyAV loaded (its
    libraries are a third of the process) while no h264 is made."""
    from common.messages import Heartbeat, VideoSupply

    with _mjpeg_camera(fps=15, frames=slice(0, 1)) as (camera, _):
        raw = {"general": {"services": ["capture", "detect"]},
               "capture": {"source": "url", "url": camera.url, "width": 640, "height": 480,
                           "fps": 15, "reconnect_max_seconds": 1}}
        with running_pipeline(raw) as pipeline:
            pipeline.wait_healthy(30)
            bus = Bus(parse_config(raw), pipeline.home, context=zmq.Context())
            try:
                beats = bus.subscriber(["capture"], [Heartbeat.TOPIC])
                supply = bus.subscriber(["video"], [VideoSupply.TOPIC])
                counters, supplies, pids = [], [], set()
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not (
                        supplies and counters and counters[-1]["frames"] > 30):
                    for m in beats.recv(0.1):
                        counters.append(m.header.counters)
                        pids.add(m.header.pid)
                    supplies += [m.header for m in supply.read()]
                maps = [Path(f"/proc/{pid}/maps").read_text() for pid in pids]
            finally:
                bus.close()
                bus.context.destroy(linger=0)
    assert counters and counters[-1]["frames"] > 30, counters
    assert counters[-1]["preroll_bytes"] == 0 and counters[-1]["preroll_s"] == 0.0
    assert supplies and all(s.preroll == 0.0 for s in supplies)
    assert maps and not any("/av/" in m or "/av.libs/" in m for m in maps)


def test_event_clips_from_an_mjpeg_camera_hold_their_pre_roll_and_survive_a_kill():
    """Capture keeps the pre-roll as the camera's own JPEGs and encodes h264
    only for the clip: it starts on a keyframe, with its whole pre-roll
    (encoded when the recorder subscribed), decodes whole, and what was
    written before a kill -9 plays."""
    from common.messages import Heartbeat, Motion, Recording
    from services.record.fmp4 import probe

    # The tree for 7 s, then the person walks through; over and over.
    with _mjpeg_camera(fps=15, frames=slice(130, 287)) as (camera, _):
        raw = {"general": {"services": ["capture", "detect", "record"]},
               "capture": {"source": "url", "url": camera.url, "width": 640, "height": 480,
                           "fps": 15, "reconnect_max_seconds": 1},
               "record": {"rec_sec_before": 2.0, "rec_sec_after": 1.0}}
        with running_pipeline(raw) as pipeline:
            pipeline.wait_healthy(30)
            bus = Bus(parse_config(raw), pipeline.home, context=zmq.Context())
            try:
                notes = bus.subscriber(["record", "detect", "capture"],
                                       [Recording.TOPIC, Motion.TOPIC, Heartbeat.TOPIC])
                seen, started, idle = [], None, -1
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    seen += [m.header for m in notes.recv(0.1)]
                    # Between clips (once the recorder heard capture has the
                    # pre-roll) the encoder is off; the clip asked for after that.
                    if idle < 0:
                        idle = next((i for i, h in enumerate(seen) if isinstance(h, Heartbeat)
                                     and h.service == "capture"
                                     and not h.counters["encoding"]), -1)
                        continue
                    started = next((h for h in seen[idle:] if isinstance(h, Recording)
                                    and h.phase == "started"), None)
                    if started and any(isinstance(h, Recording) and h.phase == "progress"
                                       and h.size > 0 for h in seen[idle:]):
                        break
                assert started is not None, pipeline.output()
                os.kill(pipeline.service_pid("record"), signal.SIGKILL)
                killed = time.time()
                time.sleep(0.5)
                info = probe(Path(started.path))
                decoded = _decoded_frames(started.path)
                log = _capture_log(pipeline)
            finally:
                bus.close()
                bus.context.destroy(linger=0)
    motion = next(h for h in seen if isinstance(h, Motion) and h.phase == "start"
                  and h.event_id == started.event_id)
    assert "h264 subscriber joined" in log and "of pre-roll" in log
    assert info.error == "" and info.first_keyframe, info
    assert decoded == info.frames, (decoded, info.frames)
    # From the keyframe at least 2 s before the event to (about) the kill.
    assert started.start <= motion.ts - 2.0 + 0.1, (started.start, motion.ts)
    assert info.frames >= 15 * (killed - motion.ts + 2.0) * 0.6, (info.frames, killed - motion.ts)


def _video_subscriber(bus):
    return bus.subscriber(["video"], [VideoPacket.TOPIC], hwm=1000)


def _until_live(sub, timeout):
    """Packets from subscribing to the first live (not replayed) one."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += sub.recv(0.05)
        if any(not p.header.replay for p in got):
            return got
    raise AssertionError(f"no live h264 within {timeout} s: {len(got)} replayed")


SLOW_KEYS = {"source": "synthetic", "width": 320, "height": 240, "fps": 15,
             "keyframe_interval": 10.0, "bitrate": 300_000}


def test_a_newcomer_gets_the_h264_pre_roll_then_live_from_a_keyframe_made_for_it():
    """The synthetic camera with a recorder configured: capture's encoder
    runs all the time and capture keeps the pre-roll as h264 GOPs. A new
    subscriber gets them first (replay, from a keyframe), then live video
    from a keyframe made at once, not one up to keyframe_interval (10 s) later."""
    raw = {"general": {"services": ["capture", "record"]}, "capture": SLOW_KEYS,
           "record": {"rec_sec_before": 1}}
    with running_pipeline(raw) as pipeline:
        pipeline.wait_healthy(60)
        bus = Bus(parse_config(raw), pipeline.home, context=zmq.Context())
        try:
            watch = bus.subscriber(["video"], [b"videosupply/"], hwm=100)
            supply = _wait_first(watch, 30)[0].header
            assert supply.preroll == 1 + 2 + 5 and supply.encoding, supply
            time.sleep(4)  # the ring fills; the recorder's own first look is over
            got = _until_live(_video_subscriber(bus), 20)
        finally:
            bus.close()
            bus.context.destroy(linger=0)
    replay = [p for p in got if p.header.replay]
    live = next(p for p in got if not p.header.replay)
    assert replay and replay[0].header.keyframe, "the replay starts on a keyframe"
    pts = [p.header.pts for p in replay]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    assert (pts[-1] - pts[0]) / 1e6 >= 3.0, "seconds of pre-roll, as the ring held"
    assert live.header.keyframe and live.header.pts > pts[-1], "live from a keyframe at once"
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for p in replay for f in decoder.decode(av.Packet(bytes(p.payload[0])))]
    assert len(frames) >= len(replay) - 1, "the replay decodes from its first packet"


def test_a_newcomer_mid_gop_gets_a_keyframe_made_for_it():
    """Nothing to record (no pre-roll kept): a second h264 subscriber that
    comes mid-GOP has its first packet a keyframe, made for it, not the
    next one keyframe_interval (10 s) after the first subscriber's."""
    raw = {"general": {"services": ["capture"]}, "capture": SLOW_KEYS}
    with running_pipeline(raw) as pipeline:
        pipeline.wait_healthy(60)
        bus = Bus(parse_config(raw), pipeline.home, context=zmq.Context())
        try:
            first = _video_subscriber(bus)
            a = _wait_first(first, 30)
            time.sleep(2)
            b = _wait_first(_video_subscriber(bus), 10)
            a += first.read()
        finally:
            bus.close()
            bus.context.destroy(linger=0)
    assert a[0].header.keyframe, "a first subscriber starts the encoder: a keyframe"
    assert b[0].header.keyframe, "the newcomer's first packet is a keyframe"
    assert (b[0].header.pts - a[0].header.pts) / 1e6 < 9.0, "made for it, not the next due"
