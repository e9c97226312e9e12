"""Peers going away while events happen: the NAS (sshd killed with its
sessions) and the MQTT broker. Each outage shows in ``pisentry status`` while
it lasts (notify's heartbeat degraded), and once the peer is back everything
recovers by itself: every clip reaches the NAS exactly once. Short outages
here (seconds); the 5-minute NAS outage is the same code path, waited longer.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.system.conftest import System
from tests.system.harness import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]


def notify_row(system: System) -> dict:
    code, out = system.status()
    return next(r for r in json.loads(out)["services"] if r["service"] == "notify")


def test_nas_and_broker_outages_show_and_recover(system_factory) -> None:
    system = system_factory(record={"event_timeout_seconds": 10})
    peers = system.peers
    wait_until(lambda: peers.nas_clips(), 40, "a first backup")
    peers.nas.stop()
    wait_until(lambda: "NAS" in notify_row(system)["counters"].get("degraded", ""), 40,
               "status to show the NAS outage", poll=0.5)
    api = system.api_status()
    assert "NAS" in json.dumps(api), "the web status does not show the NAS outage"
    peers.mqtt.stop()
    wait_until(lambda: "MQTT" in notify_row(system)["counters"].get("degraded", ""), 20,
               "status to show the broker outage", poll=0.5)
    peers.nas.start()
    peers.mqtt.start()
    before = time.time()
    wait_until(lambda: notify_row(system)["status"] == "ok", 40, "notify ok again", poll=0.5)

    def shipped() -> bool:
        clips = [c for c in system.clips() if c["start"] < before and c["state"] != "open"]
        nas = peers.nas_clips()
        return bool(clips) and all(len(nas.get(os.path.basename(c["path"]), [])) == 1
                                   for c in clips)
    wait_until(shipped, 40, "every clip on the NAS exactly once", poll=0.5)
