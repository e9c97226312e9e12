"""Which detection profile is in force, as pure logic with an injected clock,
and the night profile's settings: overrides laid over the day's, bad ones
refused by name."""

from __future__ import annotations

import time

import pytest

from common.config import parse_config
from common.config_view import ConfigError
from services.detect.profiles import DAY, NIGHT, ProfileSwitch, profile_config


def _detect(**detect):
    return parse_config({"detect": detect}).detect


def test_the_schedule_switches_at_its_times_across_midnight() -> None:
    minute = [20 * 60 + 29]  # 20:29 local
    cfg = _detect(night_when="schedule", night_start="20:30", night_end="06:30")
    switch = ProfileSwitch(cfg, 100.0, minute_of=lambda _ts: minute[0])
    assert switch.active.name == DAY
    minute[0] = 20 * 60 + 30
    got = switch.decide(160.0, None)
    assert got is not None and (got.name, got.since, got.why) == (NIGHT, 160.0,
                                                                 "schedule 20:30-06:30")
    minute[0] = 2 * 60  # past midnight: still night, no new switch
    assert switch.decide(200.0, None) is None and switch.active.name == NIGHT
    minute[0] = 6 * 60 + 30
    got = switch.decide(300.0, True)  # the IR state does not matter on a schedule
    assert got is not None and got.name == DAY


def test_ir_switches_and_nothing_is_decided_before_the_first_ir_state() -> None:
    switch = ProfileSwitch(_detect(), 0.0)
    assert switch.decide(1.0, None) is None and switch.active.why == "no IR state yet"
    assert switch.decide(2.0, True).why == "IR on"
    assert switch.decide(3.0, True) is None
    assert switch.decide(4.0, False).name == DAY
    never = ProfileSwitch(_detect(night_when="never"), 0.0)
    assert never.decide(1.0, True) is None and never.active.name == DAY


def test_a_silent_ir_service_keeps_the_profile_and_says_since_when() -> None:
    switch = ProfileSwitch(_detect(), 0.0)
    night = switch.decide(10.0, True)
    switch.ir_silent(40.0)
    heard = time.strftime("%H:%M", time.localtime(40.0))
    assert switch.active.name == "night" and switch.active.why == f"no IR state since {heard}"
    assert switch.active.since == night.since, "the night began when the IR came on"
    assert switch.decide(90.0, True) is None and switch.active.why == "IR on"
    schedule = ProfileSwitch(_detect(night_when="schedule", night_start="20:00",
                                     night_end="06:00"), 0.0)
    why = schedule.active.why
    schedule.ir_silent(40.0)
    assert schedule.active.why == why, "a schedule does not depend on the IR state"


def test_the_night_profile_overrides_only_what_it_names() -> None:
    cfg = _detect(min_pixel_delta_trigger=30, frames_to_start=3,
                  confirm={"method": "hog", "min_score": 0.6},
                  night={"min_pixel_delta_trigger": 12, "masks": [[[0, 0], [1, 0], [1, 1]]],
                         "confirm": {"min_score": 0.8}})
    night = profile_config(cfg, NIGHT)
    assert (night.min_pixel_delta_trigger, night.frames_to_start) == (12, 3)
    assert night.masks == [[[0, 0], [1, 0], [1, 1]]] and cfg.masks == []
    assert (night.confirm.method, night.confirm.min_score) == ("hog", 0.8)
    assert profile_config(cfg, DAY) is cfg


@pytest.mark.parametrize("detect, words", [
    ({"night": {"zones": []}}, "detect.night: Value error, zones cannot differ at night"),
    ({"night": {"threshold": 3}}, "detect.night.threshold: unknown key"),
    ({"night": {"min_pixel_delta_trigger": 300}}, "detect.night.min_pixel_delta_trigger: "),
    ({"night": {"confirm": {"method": "yolo"}}}, "detect.night.confirm.method: "),
    ({"night_when": "schedule", "night_start": "20:30"}, "set night_start and night_end"),
    ({"night_when": "schedule", "night_start": "25:00", "night_end": "06:00"},
     "detect.night_start: "),
    ({"night_when": "dusk"}, "detect.night_when: "),
])
def test_bad_profile_settings_are_refused_by_name(detect, words) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"detect": detect})
    assert words in str(err.value)


def test_a_night_profile_switched_by_ir_needs_the_ir_service() -> None:
    with pytest.raises(ConfigError, match="detect.night_when is \"ir\" but ir.enabled is false"):
        parse_config({"detect": {"night": {"frames_to_start": 4}}, "ir": {"enabled": False}})
    parse_config({"ir": {"enabled": False}})  # no night settings: nothing to switch to


def _walk(detector, first: int, frames: int = 45) -> list[str]:
    """Someone walking to and fro on the left half; the event phases seen."""
    import numpy as np
    phases = []
    for i in range(first, first + frames):
        luma = np.full((120, 160), 110, np.uint8)
        luma[::8] = 100
        x = 5 + (i % 20) * 3
        luma[40:90, x:x + 12] = 200
        phases += [c.phase for c in detector.process(luma, i / 15).changes]
    return phases


def test_a_mask_only_at_night_hides_what_the_day_sees() -> None:
    from services.detect.pipeline import Detector
    cfg = _detect(quiet_seconds=0.5,
                  night={"masks": [[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]]})
    detector = Detector(cfg)
    assert "start" in _walk(detector, 0)
    assert "end" in [c.phase for c in detector.stop(3.0)]
    detector.use_profile(profile_config(cfg, NIGHT), None)
    assert "start" not in _walk(detector, 100)
    detector.use_profile(cfg, None)
    assert "start" in _walk(detector, 200)
