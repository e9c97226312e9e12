"""Arm schedule (edges only) and presence hysteresis."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from common.arming import ArmSchedule, parse_window
from services.notify.presence import Presence, neighbours


def at(hour: int, minute: int, day: int = 1) -> float:
    return time.mktime((2026, 6, day, hour, minute, 0, 0, 0, -1))


def test_schedule_changes_state_only_at_window_edges() -> None:
    schedule = ArmSchedule(["22:00-06:30"])
    assert schedule.edge(at(21, 0)) is None  # first look only learns
    assert schedule.edge(at(21, 59)) is None
    assert schedule.edge(at(22, 0)) is True
    assert schedule.edge(at(23, 0)) is None  # inside the window: a manual disarm holds
    assert schedule.edge(at(6, 29, day=2)) is None
    assert schedule.edge(at(6, 30, day=2)) is False
    assert ArmSchedule([]).edge(at(12, 0)) is None


def test_bad_window_is_named() -> None:
    with pytest.raises(ValueError, match="25:00"):
        parse_window("25:00-06:00")


ARP = """IP address       HW type     Flags       HW address            Mask     Device
192.168.1.20     0x1         0x2         AA:BB:CC:DD:EE:01     *        wlan0
192.168.1.21     0x1         0x0         00:00:00:00:00:00     *        wlan0
"""


def test_neighbour_table_keeps_complete_entries(tmp_path: Path) -> None:
    table = tmp_path / "arp"
    table.write_text(ARP)
    seen = neighbours(table)
    assert {"192.168.1.20", "aa:bb:cc:dd:ee:01"} <= seen
    assert "192.168.1.21" not in seen


def test_presence_home_at_once_away_after_a_while(tmp_path: Path) -> None:
    table = tmp_path / "arp"
    table.write_text(ARP.splitlines()[0] + "\n")
    presence = Presence(["AA:BB:CC:DD:EE:01"], away_after=600, table=table)
    assert presence.look(1000.0) is None  # nobody yet, but not gone long enough
    table.write_text(ARP)
    assert presence.look(1030.0) is True
    assert presence.look(1060.0) is None
    table.write_text(ARP.splitlines()[0] + "\n")
    assert presence.look(1300.0) is None  # phone asleep for a few minutes: still home
    assert presence.look(1700.0) is False


def test_service_follows_schedule_and_presence(tmp_path: Path) -> None:
    """The wiring: ticks at window edges and phone sightings change the stored,
    published state."""
    from common.arming import ArmingStore
    from common.bus import Bus
    from common.config import parse_config
    from common.messages import ArmState
    from common.paths import Home
    from services.notify.service import NotifyService

    home = Home(tmp_path / "home").ensure()
    config = parse_config({"notify": {"arm_schedule": ["22:00-06:00"],
                                      "presence_hosts": ["aa:bb:cc:dd:ee:01"],
                                      "presence_away_seconds": 60}})
    svc = NotifyService(config, home, clock=lambda: at(21, 0))
    listener = Bus(config, home)
    try:
        svc.pub = svc.bus.publisher("notify")
        states = listener.subscriber(["notify"], [ArmState.TOPIC])
        time.sleep(0.2)
        svc.setup()
        table = tmp_path / "arp"
        table.write_text(ARP.splitlines()[0] + "\n")
        svc.presence = Presence(["aa:bb:cc:dd:ee:01"], 60, table=table)
        svc.tick(at(21, 0))
        assert ArmingStore(home).load().armed is True  # nothing changed yet
        table.write_text(ARP)  # a phone comes home
        svc.tick(at(21, 1))
        assert ArmingStore(home).load().changed_by == "presence"
        assert ArmingStore(home).load().armed is False
        svc.tick(at(22, 0))  # the schedule arms at 22:00 regardless
        assert ArmingStore(home).load().armed is True
        assert ArmingStore(home).load().changed_by == "schedule"
        published: list[ArmState] = []
        deadline = time.monotonic() + 3
        while len(published) < 3 and time.monotonic() < deadline:
            published.extend(m.header for m in states.recv(0.1))
        assert [(s.armed, s.changed_by) for s in published][-2:] == [
            (False, "presence"), (True, "schedule")]
    finally:
        svc._close()
        listener.close()
