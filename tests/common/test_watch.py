"""The watch's logic: one silence notice per outage, one return notice."""

from __future__ import annotations

from common.watch import Back, Watch


def test_a_camera_silent_for_the_timeout_is_gone_once_and_back_once() -> None:
    w = Watch(timeout=10, started=0.0)
    w.heard("cam1", 1.0)
    w.snapshot("cam1", b"jpeg", 0.9)
    assert w.check(10.9) == []
    gone = w.check(11.0)
    assert [(g.camera, g.last_seen, g.snapshot, g.heard_before) for g in gone] == [
        ("cam1", 1.0, b"jpeg", True)]
    assert "silent for 10 s" in gone[0].text(11.0)
    assert w.check(50.0) == []  # one notice per outage
    back = w.heard("cam1", 61.0)
    assert back == Back("cam1", 60.0)
    assert back.text(61.0) == "cam1: back after 60 s without a heartbeat"
    assert w.heard("cam1", 62.0) is None
    assert w.check(71.0) == []


def test_an_expected_camera_never_heard_is_gone_after_the_timeout() -> None:
    w = Watch(timeout=5, started=100.0, expected=("far",))
    assert w.next_due(101.0) == 4.0
    gone = w.check(105.0)
    assert [g.camera for g in gone] == ["far"] and not gone[0].heard_before
    assert "since the watch started" in gone[0].text(105.0)
