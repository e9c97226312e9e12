"""capture's h264 pre-roll ring, on real h264 from capture's encoder."""

from __future__ import annotations

from dataclasses import replace

from services.capture.h264ring import H264Ring
from tests.record.h264gen import make_gop_stream


def _stream(seconds: float = 12.0):
    return make_gop_stream(seconds, fps=10.0, t0=1_700_000_000.0)  # a keyframe a second


def test_each_unit_goes_out_once_in_order_and_a_join_sends_the_ring_again():
    ring = H264Ring(seconds=3.0, max_bytes=10_000_000)
    sent = []
    stream = _stream()
    for pkt in stream[:75]:
        ring.add(pkt)
        sent += ring.due(100)
    assert sent == stream[:75] and not ring.pending
    assert ring.join()  # someone new: the ring from its oldest keyframe, burst by burst
    first = ring.due(20)
    assert first[0].keyframe and first[0].pts == stream[40].pts  # GOPs at 4.0 .. 7.4 s
    assert all(ring.is_replay(p) for p in first) and ring.pending
    for pkt in stream[75:80]:
        ring.add(pkt)  # live units wait behind the replay, in order
    rest = ring.due(100)
    assert first + rest == stream[40:80] and not ring.pending
    assert [ring.is_replay(p) for p in rest] == [True] * 15 + [False] * 5


def test_bounded_in_bytes_by_whole_gops_and_nothing_before_a_first_keyframe():
    stream = _stream()
    gop_bytes = sum(len(p.data) for p in stream[10:20])
    ring = H264Ring(seconds=60.0, max_bytes=int(gop_bytes * 2.5))
    for pkt in stream[5:]:  # mid-GOP: a Pi camera's first units can be
        ring.add(pkt)
    assert ring.ring.bytes <= int(gop_bytes * 2.5)
    held = ring.due(1000)
    assert held[0].keyframe and held[0].pts >= stream[10].pts
    assert held[-1] is stream[-1]
    assert not H264Ring(3.0, 1_000_000).join(), "nothing held, nothing to replay"


def test_the_replay_flag_is_only_for_what_was_held_at_the_join():
    ring = H264Ring(seconds=3.0, max_bytes=10_000_000)
    stream = _stream(4.0)
    for pkt in stream[:30]:
        ring.add(pkt)
        ring.due(10)
    ring.join()
    late = replace(stream[30], replay=False)
    ring.add(late)
    assert not ring.is_replay(late) and ring.is_replay(stream[29])
