"""The PIR vote as pure logic on timestamps: either order within the window,
nothing outside it, only when asked (mode, night), and fail-open when the
sensor cannot vote."""

from __future__ import annotations

import logging

import pytest

from common.config import ConfigError, parse_config
from services.detect.events import EventChange
from services.detect.pir_vote import PirVote

WINDOW = 2.0


def _vote(mode: str = "always", night: bool = True) -> PirVote:
    vote = PirVote(mode, WINDOW, stale=3.0, started=0.0)
    vote.brightness(0.0, pir_usable=True, night=night)
    return vote


def _start(ts: float, alert: bool = True) -> EventChange:
    return EventChange("start", "e1", ts, alert=alert)


def _update(ts: float, alert: bool = True) -> EventChange:
    return EventChange("update", "e1", ts, alert=alert)


def _alerts(changes: list[EventChange]) -> list[tuple[str, float]]:
    return [(c.phase, c.ts) for c in changes if c.alert]


def test_pixels_alone_do_not_alert_and_a_pir_edge_in_the_window_releases_the_alert():
    vote = _vote()
    out = vote.frame(1.0, 10.0, True, [_start(10.0)])
    assert out[0].phase == "start" and not out[0].alert
    assert vote.frame(1.0, 10.5, True, [_update(10.5)])[0].alert is False
    released = vote.pir(11.5, True)  # the body reaches the PIR's field a second later
    assert _alerts(released) == [("update", 11.5)]
    assert vote.frame(1.0, 11.6, True, [_update(11.6)])[0].alert  # stays an alert
    assert vote.pir(12.0, True) == []  # released once


def test_a_pir_edge_shortly_before_the_pixel_motion_counts():
    vote = _vote()
    vote.pir(9.0, True)
    vote.pir(9.5, False)
    assert _alerts(vote.frame(1.0, 10.0, True, [_start(10.0)])) == [("start", 10.0)]


def test_a_pir_held_high_counts_however_long_ago_it_rose():
    vote = _vote()
    vote.pir(0.0, True)  # someone has been moving in front of it for a while
    assert _alerts(vote.frame(1.0, 30.0, True, [_start(30.0)])) == [("start", 30.0)]


def test_pir_and_pixels_further_apart_than_the_window_are_two_things():
    vote = _vote()
    vote.pir(5.0, True)
    vote.pir(6.0, False)
    assert not _alerts(vote.frame(1.0, 10.0, True, [_start(10.0)]))
    assert vote.frame(1.0, 13.0, False, []) == []
    assert vote.pir(15.5, True) == []  # 2.5 s after the last moving frame
    end = vote.frame(1.0, 20.0, False, [EventChange("end", "e1", 20.0)])
    assert not end[0].alert and vote.counters["pir_held"] == 1


def test_the_state_reported_on_enabling_is_no_trigger():
    vote = _vote()
    vote.pir(9.5, False)  # the device says "P 0" when told to watch the sensor
    assert not _alerts(vote.frame(1.0, 10.0, True, [_start(10.0)]))
    assert vote.counters["pir_triggers"] == 0


def test_an_event_that_should_not_alert_is_not_made_to_by_the_pir():
    vote = _vote()
    vote.frame(1.0, 10.0, True, [_start(10.0, alert=False)])  # outside the required zone
    assert vote.pir(10.5, True) == []
    out = vote.frame(1.0, 11.0, True, [_update(11.0, alert=True)])  # now it entered the zone
    assert _alerts(out) == [("update", 11.0)]


@pytest.mark.parametrize("mode, night", [("never", True), ("at_night", False)])
def test_when_not_asked_the_pixels_decide_as_before(mode, night):
    vote = _vote(mode, night)
    assert _alerts(vote.frame(1.0, 10.0, True, [_start(10.0)])) == [("start", 10.0)]


def test_at_night_the_vote_is_asked_only_while_the_ir_light_is_on():
    vote = _vote("at_night", night=True)
    assert not _alerts(vote.frame(1.0, 10.0, True, [_start(10.0)]))
    vote.brightness(1.5, pir_usable=True, night=False)  # dawn: the IR light goes off
    assert _alerts(vote.frame(1.6, 10.6, True, [])) == [("update", 10.6)]


def test_a_sensor_that_cannot_vote_leaves_the_pixels_to_decide_and_says_so(caplog):
    vote = _vote()
    assert not _alerts(vote.frame(1.0, 10.0, True, [_start(10.0)]))
    with caplog.at_level(logging.WARNING):
        out = vote.frame(4.5, 10.5, True, [])  # no brightness/ with pir=True for 4.5 s
    assert _alerts(out) == [("update", 10.5)]
    assert "no PIR sensor reachable" in caplog.text
    caplog.clear()
    vote.frame(4.6, 10.6, True, [])
    assert caplog.text == ""  # once per outage, not once a frame


def test_a_pir_that_never_fires_is_warned_about_once(caplog):
    vote = _vote()
    with caplog.at_level(logging.WARNING):
        for n in range(2):
            ts = 10.0 + 30 * n
            vote.brightness(ts - 9, pir_usable=True, night=True)
            start = EventChange("start", f"e{n}", ts)
            vote.frame(ts - 9, ts, True, [start])
            vote.frame(ts - 9, ts + 5, False, [EventChange("end", f"e{n}", ts + 5)])
    assert vote.counters["pir_held"] == 2
    assert caplog.text.count("is it wired to ir.pir_pin?") == 1


@pytest.mark.parametrize("raw, message", [
    ({"detect": {"pir": "always"}}, "detect.pir is 'always' but no PIR sensor is set up"),
    ({"detect": {"pir": "at_night"}, "ir": {"pir_pin": 2, "enabled": False}},
     "detect.pir is 'at_night' but no PIR sensor"),
    ({"detect": {"pir": "sometimes"}}, "detect.pir: Input should be"),
    ({"detect": {"pir_window_seconds": 0}}, "detect.pir_window_seconds"),
    ({"ir": {"pir_pin": 64}}, "ir.pir_pin"),
])
def test_bad_pir_config_names_the_field(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)
