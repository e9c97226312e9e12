"""Event and continuous clips from real h264, driven through the pure Recorder."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from common.catalogue import CatalogueWriter
from common.config import RecordConfig
from common.messages import Motion, OpenEvent
from services.record.fmp4 import probe
from services.record.recorder import Recorder
from tests.record.h264gen import make_gop_stream, repeat

T0 = time.mktime((2024, 5, 7, 12, 14, 30, 0, 0, -1))  # local 12:14:30


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def motion(event_id: str, phase: str, ts: float, **kw) -> Motion:
    return Motion(camera="cam1", seq=0, ts=ts, event_id=event_id, phase=phase, **kw)


@pytest.fixture(scope="module")
def stream():
    return make_gop_stream(30.0, fps=10.0, t0=T0)


def make(tmp_path: Path, clock: FakeClock, **cfg) -> tuple[Recorder, CatalogueWriter]:
    cat = CatalogueWriter(tmp_path / "cat.sqlite")
    rec = Recorder(RecordConfig(**cfg), "cam1", tmp_path / "rec", cat, clock)
    return rec, cat


def drive(rec: Recorder, clock: FakeClock, packets, motions=(), latency=0.3):
    """Feed packets in order; each motion header arrives ``latency`` s after its ts."""
    pending = sorted(motions, key=lambda m: m.ts)
    for p in packets:
        clock.t = p.ts
        while pending and pending[0].ts + latency <= p.ts:
            rec.on_motion(pending.pop(0))
        rec.on_video(p)
        rec.poll(clock.t)


def test_event_clip_preroll_postroll_and_frame_count(tmp_path, stream):
    clock = FakeClock(T0)
    rec, cat = make(tmp_path, clock, rec_sec_before=3.0, rec_sec_after=2.0)
    onset, end = T0 + 8.35, T0 + 11.0
    drive(rec, clock, stream, [motion("e1", "start", onset, labels=["person"]),
                               motion("e1", "update", onset + 1),
                               motion("e1", "end", end)])
    finished = [n for n in rec.outbox if n.phase == "finished"]
    assert [n.phase for n in rec.outbox if n.phase != "progress"] == ["started", "finished"]
    note = finished[0]
    assert note.event_id == "e1" and note.reason == "event"
    # starts on a keyframe at least rec_sec_before before onset, within one GOP
    assert onset - 3.0 - 1.0 <= note.start <= onset - 3.0
    # ends rec_sec_after after the motion end (within one GOP)
    assert abs(note.end - (end + 2.0)) <= 1.0
    info = probe(Path(note.path))
    assert info.error == "" and info.first_keyframe
    assert info.frames == round(info.duration * 10) == note.frames
    assert abs(info.duration - (note.end - note.start + 0.1)) < 0.01
    assert Path(note.path).name == time.strftime("cam1-%Y%m%d-%H%M%S.mp4",
                                                 time.localtime(note.start))
    assert Path(note.path).parent == tmp_path / "rec" / time.strftime(
        "%Y/%m/%d", time.localtime(note.start))
    row = cat.clip_by_path(note.path)
    assert row is not None and row.state == "finished" and row.size == Path(note.path).stat().st_size
    ev = cat.event("e1")
    assert ev is not None and ev.end == end and ev.labels == ["person"]
    progress = [n for n in rec.outbox if n.phase == "progress"]
    assert progress and all(0 < n.size <= note.size for n in progress)


def test_split_at_max_clip_seconds_and_overlapping_events(tmp_path, stream):
    clock = FakeClock(T0)
    rec, cat = make(tmp_path, clock, rec_sec_before=1.0, rec_sec_after=1.0,
                    max_clip_seconds=5.0)
    drive(rec, clock, stream, [motion("e1", "start", T0 + 3.2),
                               motion("e1", "end", T0 + 9.0),
                               motion("e2", "start", T0 + 9.5),  # during e1's post-roll
                               motion("e2", "end", T0 + 15.0)])
    done = [n for n in rec.outbox if n.phase == "finished"]
    assert len(done) == 3  # 2.0 -> 7.0 -> 12.0 -> 16.0
    for a, b in itertools.pairwise(done):
        assert abs(b.start - (a.end + 0.1)) < 1e-6  # contiguous, nothing lost
    for n in done:
        info = probe(Path(n.path))
        assert info.first_keyframe and info.error == "" and n.duration <= 5.0 + 1e-6
    assert {c.path for c in cat.clips_for("e2")} >= {done[-1].path}


def test_edge_mode_short_clips_around_start_and_end(tmp_path, stream):
    clock = FakeClock(T0)
    rec, _ = make(tmp_path, clock, rec_sec_before=2.0, rec_sec_after=2.0, event_mode="edge")
    drive(rec, clock, stream, [motion("e1", "start", T0 + 6.0), motion("e1", "end", T0 + 20.0)])
    done = [n for n in rec.outbox if n.phase == "finished"]
    assert [n.reason for n in done] == ["edge", "edge"]
    assert abs(done[0].start - (T0 + 4.0)) < 1e-6 and abs(done[0].end - (T0 + 7.9)) < 1e-6
    assert abs(done[1].start - (T0 + 18.0)) < 1e-6 and abs(done[1].end - (T0 + 21.9)) < 1e-6


def test_gap_waits_for_next_keyframe(tmp_path, stream):
    clock = FakeClock(T0)
    rec, _ = make(tmp_path, clock, rec_sec_before=1.0, rec_sec_after=1.0)
    rec.on_motion(motion("e1", "start", T0 + 2.0))
    for i, p in enumerate(stream[:80]):
        if 43 <= i <= 46:
            continue  # lost on the bus
        rec.on_video(p, gap=4 if i == 47 else 0)
    rec.on_motion(motion("e1", "end", T0 + 6.0))
    for p in stream[80:]:
        rec.on_video(p)
    note = next(n for n in rec.outbox if n.phase == "finished")
    info = probe(Path(note.path))
    assert info.error == ""
    # The start came before any video: the clip opens once the video reaches
    # it, from the keyframe rec_sec_before earlier (10), as capture's replayed
    # pre-roll is cut. Frames 10..42 and 50..79; 47..49 are dropped until the
    # keyframe at 50.
    assert info.frames == 33 + 30 == note.frames
    assert rec.counters["skipped"] == 3


def test_continuous_clips_line_up_on_quarter_hours(tmp_path, stream):
    clock = FakeClock(T0)
    rec, cat = make(tmp_path, clock, continuous=True, events=False)
    # 12:14:30 -> 12:31:10 at 2 fps, replaying real GOPs
    base = make_gop_stream(2.0, fps=2.0, keyframe_interval=1.0, t0=T0)
    drive(rec, clock, repeat(base, 16 * 60 + 40, T0))
    rec.close_all()
    done = [n for n in rec.outbox if n.phase == "finished"]
    starts = [time.strftime("%H:%M:%S", time.localtime(n.start)) for n in done]
    assert starts == ["12:14:30", "12:15:00", "12:30:00"]
    assert [Path(n.path).name for n in done] == [
        "cam1-20240507-1214.mp4", "cam1-20240507-1215.mp4", "cam1-20240507-1230.mp4"]
    assert all(n.reason == "continuous" for n in done)
    assert abs(done[1].duration - 900.0) < 1e-6
    assert probe(Path(done[1].path), decode=False).frames == 1800
    assert [c.reason for c in cat.clips()] == ["continuous"] * 3


def test_continuous_and_event_clips_share_the_tree(tmp_path, stream):
    clock = FakeClock(T0)
    rec, _ = make(tmp_path, clock, continuous=True, rec_sec_before=1.0, rec_sec_after=1.0)
    drive(rec, clock, stream[:100], [motion("e1", "start", T0 + 4.0),
                                     motion("e1", "end", T0 + 5.0)])
    rec.close_all()
    done = {n.reason: n for n in rec.outbox if n.phase == "finished"}
    assert set(done) == {"event", "continuous"}
    assert Path(done["event"].path).parent == Path(done["continuous"].path).parent
    assert done["event"].path != done["continuous"].path


def test_staging_folder_moves_finished_clips_to_the_card(tmp_path, stream):
    clock = FakeClock(T0)
    cat = CatalogueWriter(tmp_path / "cat.sqlite")
    staging = tmp_path / "tmpfs"
    rec = Recorder(RecordConfig(rec_sec_before=1.0, rec_sec_after=1.0), "cam1", tmp_path / "rec",
                   cat, clock, staging=staging)
    drive(rec, clock, stream[:100], [motion("e1", "start", T0 + 4.0),
                                     motion("e1", "end", T0 + 5.0)])
    started = next(n for n in rec.outbox if n.phase == "started")
    done = next(n for n in rec.outbox if n.phase == "finished")
    assert Path(started.path).parent == staging
    assert Path(done.path).parent == tmp_path / "rec" / time.strftime(
        "%Y/%m/%d", time.localtime(T0))
    assert not list(staging.iterdir()) and probe(Path(done.path)).error == ""
    assert cat.clips_for("e1")[0].path == done.path


def test_keyframe_snapshot_is_a_jpeg_of_the_frame(tmp_path, stream):
    import cv2
    import numpy as np

    from services.record.snapshots import SnapshotStore, keyframe_jpeg

    jpeg = keyframe_jpeg(stream[10])
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (120, 160, 3)
    cat = CatalogueWriter(tmp_path / "cat.sqlite")
    path = SnapshotStore(tmp_path / "rec", cat, "cam1").save(jpeg, T0, "periodic",
                                                             width=160, height=120)
    assert path.name == "cam1-20240507-121430-periodic.jpg"
    assert cat.snapshots(kind="periodic")[0].size == len(jpeg)


def _decoded_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_on_demand_video_event_clip_starts_from_capture_pre_roll(tmp_path):
    """Capture keeps the pre-roll (VideoSupply): the recorder asks for video
    only for the clip, and the clip is cut from the replayed pre-roll."""
    from tests.record.h264gen import joined_stream

    clock = FakeClock(T0)
    rec, _ = make(tmp_path, clock, rec_sec_before=2.0, rec_sec_after=1.0)
    rec.supply(4.0)
    assert rec.wants_video()  # just started: what capture replays is kept ...
    rec.on_open_event(OpenEvent(camera="cam1", seq=0, ts=T0, event_id=""))
    assert not rec.wants_video()  # ... until detect says nothing is open
    onset = T0 + 8.0
    clock.t = onset + 0.3  # detect's lag
    rec.on_motion(motion("e1", "start", onset))
    assert rec.wants_video()
    rec.video_on()
    # Subscribed at frame 83: frames 44..83 replayed, then live from 84 on.
    packets = joined_stream(16.0, join=83, preroll=40, t0=T0)
    assert packets[0].replay and packets[0].keyframe and not packets[40].replay
    ended = False
    for p in packets:
        clock.t = max(clock.t, p.ts)
        if not ended and p.ts >= T0 + 10.3:
            rec.on_motion(motion("e1", "end", T0 + 10.0))
            ended = True
        rec.on_video(p)
    note = next(n for n in rec.outbox if n.phase == "finished")
    # From the keyframe at/before onset - rec_sec_before (6.0: frame 60 is a
    # keyframe of the replay, 44 + 10k) to the post-roll.
    assert onset - 3.0 <= note.start <= onset - 2.0, note.start - T0
    assert abs(note.end - (T0 + 11.0)) <= 0.11
    info = probe(Path(note.path))
    assert info.error == "" and info.first_keyframe
    assert _decoded_frames(Path(note.path)) == info.frames == note.frames
    assert info.frames == round((note.end - note.start) * 10) + 1
    assert not rec.wants_video()  # the clip is done: capture may stop encoding
    rec.video_off()
    assert rec.ring.newest is None


def test_a_replay_for_another_subscriber_leaves_a_running_clip_whole(tmp_path):
    """Someone else subscribed mid-clip: capture replays its pre-roll from
    a fresh encoder, then goes on at a keyframe; the clip drops the replay
    and holds every frame once, in order."""
    from tests.record.h264gen import joined_stream

    clock = FakeClock(T0)
    rec, _ = make(tmp_path, clock, continuous=True)
    rec.supply(4.0)
    assert rec.wants_video()  # continuous: video all the time
    packets = joined_stream(8.0, join=45, preroll=30, earlier=True, t0=T0)
    for p in packets:
        clock.t = p.ts
        rec.on_video(p)
    rec.close_all()
    note = next(n for n in rec.outbox if n.phase == "finished")
    info = probe(Path(note.path))
    assert info.error == "" and info.first_keyframe
    assert rec.counters["replay_dropped"] == 30
    assert _decoded_frames(Path(note.path)) == info.frames == note.frames == 80


def test_a_replay_of_capture_s_h264_ring_leaves_a_running_clip_whole(tmp_path):
    """Someone else subscribed mid-clip to a camera whose h264 capture
    keeps as h264 (the Pi camera: its encoder is not asked for a keyframe):
    the ring goes out again, then live goes on mid-GOP. The clip drops the
    replay without waiting for a keyframe: every frame once, in order."""
    from dataclasses import replace

    clock = FakeClock(T0)
    rec, _ = make(tmp_path, clock, continuous=True)
    rec.supply(4.0)
    stream = make_gop_stream(8.0, fps=10.0, t0=T0)  # keyframes at 0, 10, 20, ...
    join = 45  # mid-GOP: the ring holds 30..45 and goes out again
    packets = stream[:join + 1] + [replace(p, replay=True) for p in stream[30:join + 1]] \
        + stream[join + 1:]
    for p in packets:
        clock.t = max(clock.t, p.ts)
        rec.on_video(p)
    rec.close_all()
    note = next(n for n in rec.outbox if n.phase == "finished")
    info = probe(Path(note.path))
    assert info.error == "" and info.first_keyframe
    assert rec.counters["replay_dropped"] == 16 and rec.counters["skipped"] == 0
    assert _decoded_frames(Path(note.path)) == info.frames == note.frames == 80
