"""Events the recorder hears of late (it was down, or starved, at their
start): their clips, and what the catalogue says they missed. The pure
Recorder on real h264; the whole restart is tests/system/test_record_restart.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.messages import OpenEvent
from services.record.fmp4 import probe
from tests.record.h264gen import make_gop_stream
from tests.record.test_recorder import T0, FakeClock, make, motion


def open_event(event_id: str, ts: float, start: float = 0.0, **kw) -> OpenEvent:
    return OpenEvent(camera="cam1", seq=0, ts=ts, event_id=event_id, start=start, **kw)


@pytest.fixture(scope="module")
def stream():
    return make_gop_stream(20.0, fps=10.0, t0=T0)


def feed(rec, clock, packets, at=()):
    """Packets in order; ``at``: (capture ts, message) given once the video reaches it."""
    pending = sorted(at, key=lambda a: a[0])
    for p in packets:
        clock.t = p.ts
        while pending and pending[0][0] <= p.ts:
            msg = pending.pop(0)[1]
            rec.on_open_event(msg) if isinstance(msg, OpenEvent) else rec.on_motion(msg)
        rec.on_video(p)
        rec.poll(clock.t)


def finished(rec):
    return [n for n in rec.outbox if n.phase == "finished"]


def test_an_open_event_heard_after_a_restart_gets_a_clip_marked_partial(tmp_path, stream):
    # A recorder (re)started at T0+5.05: its video from then (the next keyframe,
    # T0+6); detect has had e1 open since T0+3 and says so at T0+6.5.
    clock = FakeClock(T0 + 5.05)
    rec, cat = make(tmp_path, clock, rec_sec_before=1.0, rec_sec_after=1.0)
    live = [p for p in stream if p.ts >= T0 + 5.05]
    feed(rec, clock, live, [(T0 + 6.5, open_event("e1", T0 + 6.5, start=T0 + 3.0)),
                            (T0 + 7.5, open_event("e1", T0 + 7.5, start=T0 + 3.0)),
                            (T0 + 9.0, motion("e1", "end", T0 + 9.0, start=T0 + 3.0))])
    notes = finished(rec)
    assert len(notes) == 1 and notes[0].event_id == "e1"
    note = notes[0]
    assert note.start == pytest.approx(T0 + 6.0, abs=0.01)  # the first keyframe it got
    assert note.end == pytest.approx(T0 + 10.0, abs=0.11)  # the post-roll
    info = probe(Path(note.path))
    assert info.error == "" and info.first_keyframe
    row = cat.clip_by_path(note.path)
    assert row is not None and row.missed == pytest.approx(3.0)
    ev = cat.event("e1")
    assert ev is not None and ev.start == pytest.approx(T0 + 3.0, abs=0.01)
    assert ev.end == pytest.approx(T0 + 9.0, abs=0.01)


def test_a_clip_recovered_from_before_the_restart_counts_as_held(tmp_path, stream):
    clock = FakeClock(T0 + 5.05)
    rec, cat = make(tmp_path, clock, rec_sec_before=1.0, rec_sec_after=1.0)
    # What the killed recorder wrote of e1 (2 s to 4.5 s), recovered at start.
    old = tmp_path / "rec" / "old.mp4"
    cat.add_clip(old, "cam1", T0 + 2.0, "event", "e1")
    cat.finish_clip(old, end=T0 + 4.5, duration=2.5, size=1, frames=25, state="recovered")
    feed(rec, clock, [p for p in stream if p.ts >= T0 + 5.05],
         [(T0 + 6.2, open_event("e1", T0 + 6.2, start=T0 + 3.0)),
          (T0 + 8.0, motion("e1", "end", T0 + 8.0, start=T0 + 3.0))])
    note, = finished(rec)
    row = cat.clip_by_path(note.path)
    assert row is not None and row.missed == pytest.approx(1.5)  # 4.5 .. 6.0


def test_an_update_of_an_unknown_event_starts_from_the_event_start_it_carries(tmp_path,
                                                                                stream):
    # Started late enough that the ring reaches back: a whole clip.
    clock = FakeClock(T0)
    rec, cat = make(tmp_path, clock, rec_sec_before=1.0, rec_sec_after=1.0)
    feed(rec, clock, stream[:120], [(T0 + 6.3, motion("e1", "update", T0 + 6.0,
                                                      start=T0 + 5.2)),
                                    (T0 + 8.3, motion("e1", "end", T0 + 8.0, start=T0 + 5.2))])
    note, = finished(rec)
    assert note.start == pytest.approx(T0 + 4.0, abs=0.01)  # the keyframe before 5.2 - 1
    row = cat.clip_by_path(note.path)
    assert row is not None and row.missed == 0
    ev = cat.event("e1")
    assert ev is not None and ev.start == pytest.approx(T0 + 5.2, abs=0.01)


def test_an_event_whose_whole_life_went_by_unheard_gets_what_is_held_of_it(tmp_path,
                                                                             stream):
    # Only its end reaches us (the start and every update went while we were
    # starved); the ring still holds its video.
    clock = FakeClock(T0)
    rec, cat = make(tmp_path, clock, rec_sec_before=1.0, rec_sec_after=1.0)
    feed(rec, clock, stream[:130], [(T0 + 9.3, motion("e1", "end", T0 + 9.0,
                                                      start=T0 + 7.5))])
    note, = finished(rec)
    assert note.event_id == "e1"
    assert note.start == pytest.approx(T0 + 6.0, abs=0.01)
    assert note.end == pytest.approx(T0 + 10.0, abs=0.11)
    assert cat.clip_by_path(note.path).missed == 0


def test_detect_no_longer_having_an_event_open_ends_it(tmp_path, stream):
    # detect restarted (kill -9: no end was sent): its first OpenEvent says none.
    clock = FakeClock(T0)
    rec, cat = make(tmp_path, clock, rec_sec_before=1.0, rec_sec_after=1.0,
                    event_timeout_seconds=900)
    feed(rec, clock, stream[:150], [(T0 + 5.0, motion("e1", "start", T0 + 5.0)),
                                    (T0 + 7.0, open_event("e1", T0 + 7.0, start=T0 + 5.0)),
                                    (T0 + 9.0, open_event("", T0 + 9.0)),
                                    (T0 + 10.0, open_event("", T0 + 10.0))])
    note, = finished(rec)
    assert note.end == pytest.approx(T0 + 9.9, abs=0.11)  # its post-roll from 8.9
    assert cat.event("e1").end == pytest.approx(T0 + 8.9, abs=0.11)
    assert not rec.events


def test_a_late_word_of_an_ended_event_does_not_reopen_it(tmp_path, stream):
    clock = FakeClock(T0)
    rec, _ = make(tmp_path, clock, rec_sec_before=1.0, rec_sec_after=1.0,
                  event_timeout_seconds=10)
    # Timed out at ~T0+15.3 (nothing from detect for 10 s), then its real end.
    feed(rec, clock, stream, [(T0 + 5.0, motion("e1", "start", T0 + 5.0)),
                              (T0 + 17.0, motion("e1", "end", T0 + 16.5, start=T0 + 5.0))])
    assert len(finished(rec)) == 1 and not rec.sessions


def test_an_event_begun_and_ended_while_nobody_listened_gets_what_is_held(tmp_path, stream):
    # Its start and end both went by unheard; detect's OpenEvent names it as
    # the last that ended. Heard of before (in the catalogue): left alone.
    clock = FakeClock(T0)
    rec, cat = make(tmp_path, clock, rec_sec_before=1.0, rec_sec_after=1.0)
    cat.upsert_event("e0", "cam1", T0 - 30, end=T0 - 25)
    last = {"last_id": "e1", "last_start": T0 + 6.5, "last_end": T0 + 8.0}
    feed(rec, clock, stream[:130], [
        (T0 + 2.0, open_event("", T0 + 2.0, last_id="e0", last_start=T0 - 30,
                              last_end=T0 - 25)),
        (T0 + 8.5, open_event("", T0 + 8.5, **last)),
        (T0 + 9.5, open_event("", T0 + 9.5, **last))])
    note, = finished(rec)
    assert note.event_id == "e1"
    assert note.start == pytest.approx(T0 + 5.0, abs=0.01)
    assert note.end == pytest.approx(T0 + 9.0, abs=0.11)
    assert cat.clip_by_path(note.path).missed == 0
    ev = cat.event("e1")
    assert ev is not None
    assert (ev.start, ev.end) == pytest.approx((T0 + 6.5, T0 + 8.0), abs=0.01)
    assert cat.clips_for("e0") == []


def test_a_restarted_recorder_keeps_capture_pre_roll_until_detect_says_what_is_open(
        tmp_path):
    """A camera that sends JPEGs: capture replays its pre-roll to the new
    recorder's subscription. Let go at once (capture keeps the pre-roll, and
    no clip is open yet), the replay would be lost and asked for again later,
    reaching back that much less."""
    from tests.record.h264gen import joined_stream

    clock = FakeClock(T0 + 8.35)  # (re)started, subscribed at once
    rec, cat = make(tmp_path, clock, rec_sec_before=1.0, rec_sec_after=1.0)
    # Frames 44..83 (T0+4.4 .. 8.3) replayed, a keyframe first; live from 8.4.
    packets = joined_stream(12.0, join=83, preroll=40, t0=T0)
    rec.supply(4.0)  # VideoSupply came first
    heard = [(T0 + 8.6, open_event("e1", T0 + 8.6, start=T0 + 6.0)),
             (T0 + 10.0, motion("e1", "end", T0 + 10.0, start=T0 + 6.0))]
    for p in packets:
        clock.t = max(clock.t, p.ts)  # the replay comes as fast as capture encodes it
        while heard and heard[0][0] <= clock.t and not p.replay:
            msg = heard.pop(0)[1]
            rec.on_open_event(msg) if isinstance(msg, OpenEvent) else rec.on_motion(msg)
        if not rec.wants_video():  # what the service does: unsubscribe, the ring goes stale
            rec.video_off()
            continue
        rec.on_video(p)
        rec.poll(clock.t)
    note, = finished(rec)
    # The replay's keyframe at or before rec_sec_before ahead of e1's start
    # (its GOPs start at 4.4, 5.4, ...): until it hears detect, the recorder
    # keeps more than rec_sec_before + 2 s back from the newest (8.5), which
    # would have cut the pre-roll at 5.4.
    assert note.start == pytest.approx(T0 + 4.4, abs=0.01)
    assert cat.clip_by_path(note.path).missed == 0
