import msgpack
import pytest

from common.messages import (
    PROTOCOL_VERSION,
    TOPICS,
    ArmState,
    Frame,
    Heartbeat,
    MessageError,
    Motion,
    Mute,
    OpenEvent,
    PirMotion,
    Rotate,
    Tune,
    VideoPacket,
    decode,
    encode,
)

SAMPLES = [
    Frame(camera="c", seq=1, ts=1.5, width=320, height=240, format="yuv420"),
    VideoPacket(camera="c", seq=2, ts=2.0, pts=123456, keyframe=True, width=64, height=48,
                fps=15.0),
    Motion(camera="c", seq=3, ts=3.0, event_id="e1", phase="start",
           boxes=[[0.1, 0.2, 0.3, 0.4]], area=0.05, score=0.9, labels=["person"]),
    Rotate(camera="c", seq=4, ts=4.0, source="telegram:1", angles={"pan": 30}),
    Mute(camera="c", seq=4, ts=4.0, source="web", until=1e9),
    Tune(camera="c", seq=4, ts=4.0, source="web", threshold=25, min_area=0.01,
         frames_to_start=2),
    Tune(camera="c", seq=4, ts=4.0, source="web", threshold=12, min_area=0.01,
         frames_to_start=2, profile="night"),
    ArmState(camera="c", seq=5, ts=5.0, armed=False, changed_by="web"),
    PirMotion(camera="c", seq=7, ts=7.0, active=True),
    OpenEvent(camera="c", seq=8, ts=8.0, event_id="e2", start=7.5, labels=["person"],
              zones=["Driveway"], last_id="e1", last_start=1.0, last_end=3.0),
    Heartbeat(camera="c", seq=6, ts=6.0, service="detect", pid=1, started=0.0, status="ok",
              counters={"in": 1}),
]


@pytest.mark.parametrize("header", SAMPLES, ids=lambda h: type(h).__name__)
def test_round_trip(header):
    topic, raw = encode(header)
    assert topic == type(header).TOPIC and topic.endswith(b"/")
    assert decode(topic, raw) == header


def test_no_topic_is_a_prefix_of_another():
    topics = list(TOPICS)
    for a in topics:
        for b in topics:
            assert a == b or not b.startswith(a)


def _raw(body):
    return msgpack.packb(body)


@pytest.mark.parametrize("topic, raw, kind", [
    (b"nonsense/", _raw({"v": 1}), "unknown-topic"),
    (b"frame/lores/", b"\xc1\xc1garbage", "garbage"),
    (b"frame/lores/", _raw([1, 2, 3]), "garbage"),
    (b"frame/lores/", _raw({"v": PROTOCOL_VERSION + 1, "camera": "c", "seq": 1, "ts": 1.0,
                            "width": 1, "height": 1, "format": "gray"}), "version"),
    (b"frame/lores/", _raw({"v": PROTOCOL_VERSION, "camera": "c", "seq": 1, "ts": 1.0,
                            "height": 1, "format": "gray"}), "missing-field"),
    (b"frame/lores/", _raw({"v": PROTOCOL_VERSION, "camera": "c", "seq": "x", "ts": 1.0,
                            "width": 1, "height": 1, "format": "gray"}), "bad-field"),
    (b"frame/lores/", _raw({"v": PROTOCOL_VERSION, "camera": "c", "seq": True, "ts": 1.0,
                            "width": 1, "height": 1, "format": "gray"}), "bad-field"),
])
def test_malformed_headers_raise_message_error_with_kind(topic, raw, kind):
    with pytest.raises(MessageError) as err:
        decode(topic, raw)
    assert err.value.kind == kind


def test_optional_fields_take_defaults_and_unknown_fields_are_ignored():
    raw = _raw({"v": PROTOCOL_VERSION, "camera": "c", "seq": 1, "ts": 1.0, "event_id": "e",
                "phase": "end", "future_field": 1})
    motion = decode(b"motion/", raw)
    assert motion.boxes == [] and motion.alert is True


@pytest.mark.parametrize("topic, fields, kind", [
    (b"control/selfdestruct/", {"source": "x"}, "unknown-topic"),  # a command nobody knows
    (b"control/mute/", {"source": "web", "until": float("nan")}, "bad-field"),
    (b"control/mute/", {"source": "web"}, "missing-field"),
    (b"control/rotate/", {"source": "t", "angles": {"pan": "thirty"}}, "bad-field"),
    (b"control/rotate/", {"source": "t", "angles": {}}, "bad-field"),
    (b"control/label/", {"source": "t", "event_id": "e1", "verdict": "maybe"}, "bad-field"),
    (b"control/tune/", {"source": "t", "threshold": 0, "min_area": 0.1, "frames_to_start": 2},
     "bad-field"),
    (b"control/tune/", {"source": "t", "threshold": 25, "min_area": 0.1, "frames_to_start": 2,
                        "profile": "dusk"}, "bad-field"),  # no such detection profile
    (b"control/ir/", {"source": "t", "mode": "blink", "level": 0.0}, "bad-field"),
])
def test_a_command_of_unknown_kind_or_out_of_range_is_a_message_error(topic, fields, kind):
    raw = _raw({"v": PROTOCOL_VERSION, "camera": "c", "seq": 1, "ts": 1.0, **fields})
    with pytest.raises(MessageError) as err:
        decode(topic, raw)
    assert err.value.kind == kind
