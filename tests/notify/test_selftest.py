"""A self-test run's bookkeeping: stages in order, the first missing one named."""

from __future__ import annotations

from services.notify.selftest import SelfTestRun


def test_a_run_that_reaches_every_stage_passes_with_each_delay() -> None:
    run = SelfTestRun("st-1", 100.0, 60, ("detect", "record", "notify", "nas"))
    run.event("ev1", 101.25)
    run.event("ev2", 102.0)  # the run's event is the first one
    run.clip("/r/a.mp4", 110.0)
    run.reached("notify", 110.5)
    assert not run.check(111.0)
    run.reached("nas", 112.0)
    assert run.check(112.0) and not run.failed
    assert run.event_id == "ev1"
    assert run.report() == ("self-test passed: detect 1.2 s, record 10.0 s, notify 10.5 s, "
                            "nas 12.0 s")


def test_a_stage_not_reached_in_time_fails_the_run_and_is_named() -> None:
    run = SelfTestRun("st-2", 0.0, 30, ("detect", "record", "nas"))
    run.event("ev1", 2.0)
    run.clip("/r/a.mp4", 9.0)
    assert not run.check(29.9)
    assert run.check(30.0) and run.failed == "nas"
    assert run.report() == ("self-test FAILED: no clip reached the NAS within 30 s "
                            "(reached: detect 2.0 s, record 9.0 s) (notify not set up)")
    assert run.view()["ok"] is False
