"""Alert policy: arming, cooldown grouping, quiet hours, message order."""

from __future__ import annotations

import time

from common.arming import Arming
from common.messages import Motion
from services.notify.alerts import AlertPolicy

ARMED = Arming(armed=True)


def motion(event: str, ts: float, phase: str = "start", alert: bool = True,
           labels: list[str] | None = None, zones: list[str] | None = None) -> Motion:
    return Motion(camera="cam1", seq=0, ts=ts, event_id=event, phase=phase, alert=alert,
                  labels=labels or [], zones=zones or [])


def local_ts(hour: int, minute: int) -> float:
    return time.mktime((2026, 6, 1, hour, minute, 0, 0, 0, -1))


def test_photo_goes_when_decision_and_snapshot_meet_in_either_order() -> None:
    policy = AlertPolicy(cooldown_seconds=0)
    t = local_ts(12, 0)
    assert policy.on_motion(motion("a", t, labels=["person"], zones=["door"]), ARMED, t) is None
    alert = policy.on_snapshot("a", "cam1", t, b"jpeg-a")
    assert alert is not None and alert.photo == b"jpeg-a"
    assert "cam1" in alert.caption and "person" in alert.caption and "door" in alert.caption
    # Snapshot first, decision second.
    assert policy.on_snapshot("b", "cam1", t + 1, b"jpeg-b") is None
    alert = policy.on_motion(motion("b", t + 1), ARMED, t + 1)
    assert alert is not None and alert.photo == b"jpeg-b"
    # Never twice for one event.
    assert policy.on_snapshot("b", "cam1", t + 2, b"jpeg-b2") is None
    assert policy.on_motion(motion("b", t + 2, phase="update"), ARMED, t + 2) is None


def test_disarmed_and_muted_suppress() -> None:
    policy = AlertPolicy(cooldown_seconds=0)
    t = local_ts(12, 0)
    policy.on_snapshot("a", "cam1", t, b"x")
    assert policy.on_motion(motion("a", t), Arming(armed=False), t) is None
    policy.on_snapshot("b", "cam1", t, b"x")
    assert policy.on_motion(motion("b", t), Arming(armed=True, muted_until=t + 60), t) is None
    assert policy.counters["suppressed"] == 2 and policy.counters["alerts"] == 0
    assert not policy.alerted("a")


def test_alert_flag_false_waits_for_an_update_that_alerts() -> None:
    policy = AlertPolicy(cooldown_seconds=0)
    t = local_ts(12, 0)
    policy.on_snapshot("a", "cam1", t, b"x")
    assert policy.on_motion(motion("a", t, alert=False), ARMED, t) is None
    alert = policy.on_motion(motion("a", t + 1, phase="update", labels=["person"]), ARMED, t + 1)
    assert alert is not None and "person" in alert.caption


def test_cooldown_groups_a_burst_into_the_next_alert() -> None:
    policy = AlertPolicy(cooldown_seconds=30)
    t = local_ts(12, 0)
    for i, dt in enumerate([0, 5, 10, 20]):
        policy.on_snapshot(f"e{i}", "cam1", t + dt, b"x")
        out = policy.on_motion(motion(f"e{i}", t + dt), ARMED, t + dt)
        assert (out is not None) == (i == 0)
    assert policy.counters["grouped"] == 3
    # Another camera has its own cooldown.
    policy.on_snapshot("other", "cam2", t + 6, b"x")
    m = Motion(camera="cam2", seq=0, ts=t + 6, event_id="other", phase="start")
    assert policy.on_motion(m, ARMED, t + 6) is not None
    policy.on_snapshot("late", "cam1", t + 31, b"x")
    alert = policy.on_motion(motion("late", t + 31), ARMED, t + 31)
    assert alert is not None and "+3 more event(s)" in alert.caption


def test_quiet_hours_silent_or_skip() -> None:
    night = local_ts(23, 30)
    day = local_ts(12, 0)
    silent = AlertPolicy(0, "22:00-07:00", "silent")
    silent.on_snapshot("n", "cam1", night, b"x")
    alert = silent.on_motion(motion("n", night), ARMED, night)
    assert alert is not None and alert.silent
    silent.on_snapshot("d", "cam1", day, b"x")
    alert = silent.on_motion(motion("d", day), ARMED, day)
    assert alert is not None and not alert.silent
    skip = AlertPolicy(0, "22:00-07:00", "skip")
    early = local_ts(6, 59)
    skip.on_snapshot("n", "cam1", early, b"x")
    assert skip.on_motion(motion("n", early), ARMED, early) is None


def test_a_missing_snapshot_still_alerts_in_words() -> None:
    policy = AlertPolicy(cooldown_seconds=0)
    t = local_ts(12, 0)
    assert policy.on_motion(motion("a", t, labels=["person"]), ARMED, t) is None
    assert policy.overdue(t + 1.0, wait=2.0) == []
    (late,) = policy.overdue(t + 2.0, wait=2.0)
    assert late.photo == b"" and "person" in late.caption
    assert policy.overdue(t + 5.0, wait=2.0) == []  # once
    assert policy.on_snapshot("a", "cam1", t + 6, b"too late") is None


def test_an_event_whose_start_was_missed_still_alerts_once() -> None:
    """notify restarted while the event began: its next message, even its end, alerts."""
    policy = AlertPolicy(cooldown_seconds=0)
    t = local_ts(12, 0)
    assert policy.on_motion(motion("a", t + 3, phase="end", labels=["person"]), ARMED,
                            t + 3) is None
    (late,) = policy.overdue(t + 5.0, wait=2.0)  # no snapshot will come: in words
    assert late.event_id == "a" and "person" in late.caption
    assert policy.on_motion(motion("b", t + 9, phase="update"), ARMED, t + 9) is None
    assert policy.on_snapshot("b", "cam1", t + 9, b"jpeg-b") is not None
    # a known event's end never alerts again
    assert policy.on_motion(motion("b", t + 12, phase="end"), ARMED, t + 12) is None
    assert policy.overdue(t + 20.0, wait=2.0) == []


def test_no_picture_is_held_once_it_cannot_be_needed() -> None:
    """Snapshots are ~50-100 KB and 200 events are remembered: a soak showed
    notify growing by one picture per event while it kept them."""
    policy = AlertPolicy(cooldown_seconds=0)
    t = local_ts(12, 0)
    policy.on_motion(motion("sent", t), ARMED, t)
    assert policy.on_snapshot("sent", "cam1", t, b"p" * 50_000) is not None
    policy.on_snapshot("quiet", "cam1", t, b"q" * 50_000)
    policy.on_motion(motion("quiet", t), Arming(armed=False), t)
    assert policy.events["quiet"].snapshot is not None  # may still alert if armed in time
    policy.on_motion(motion("quiet", t + 5, phase="end"), Arming(armed=False), t + 5)
    assert [e.snapshot for e in policy.events.values()] == [None, None]


def test_caption_says_who_stayed_where_and_what_crossed() -> None:
    policy = AlertPolicy(cooldown_seconds=0)
    t = local_ts(12, 0)
    policy.on_snapshot("a", "cam1", t, b"x")
    assert policy.on_motion(motion("a", t, alert=False), ARMED, t) is None
    late = Motion(camera="cam1", seq=1, ts=t + 40, event_id="a", phase="update", alert=True,
                  labels=["person"], zones=["Driveway"], loitering={"Driveway": 40.2},
                  crossings=["Gate:forward"])
    alert = policy.on_motion(late, ARMED, t + 40)
    assert alert is not None
    assert "person in Driveway for 40 s" in alert.caption
    assert "person crossed Gate (forward)" in alert.caption
