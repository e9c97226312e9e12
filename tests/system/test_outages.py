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
    _, out = system.status()
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

    # Telegram answering 500: the alerts of events meanwhile arrive afterwards, once.
    seen = len(system.watch.started_events())
    peers.telegram.outage = True
    try:
        wait_until(lambda: "Telegram" in notify_row(system)["counters"].get("degraded", ""),
                   40, "status to show the Telegram outage", poll=0.5)
        wait_until(lambda: len(system.watch.started_events()) > seen, 30,
                   "an event during the Telegram outage", poll=0.5)
    finally:
        peers.telegram.outage = False
    events = system.watch.started_events()
    wait_until(lambda: all(peers.telegram.alerts_for(e) >= 1 for e in events), 40,
               "every alert delivered after the outage", poll=0.5)
    assert all(peers.telegram.alerts_for(e) == 1 for e in events), \
        {e: peers.telegram.alerts_for(e) for e in events}
    wait_until(lambda: notify_row(system)["status"] == "ok", 30, "notify ok again", poll=0.5)


def test_network_camera_dropping_shows_and_recovers(system_factory) -> None:
    import cv2

    from tests.capture.mjpeg_server import MjpegCamera
    from tests.support import EVAL

    images = sorted((EVAL / "wallflower_wavingtrees").glob("*.bmp"))[:60]
    if not images:
        pytest.skip("no wallflower footage in shared/eval")
    jpegs = [cv2.imencode(".jpg", cv2.imread(str(p)))[1].tobytes() for p in images]
    camera = MjpegCamera(jpegs, fps=15).start()
    port = camera.port
    try:
        system = system_factory(
            general={"services": ["capture", "detect", "record", "web"]},
            capture={"source": "url", "url": camera.url, "width": 160, "height": 120,
                     "lores_width": 160, "lores_height": 120, "reconnect_max_seconds": 1})

        def capture_row() -> dict:
            return next(r for r in json.loads(system.status()[1])["services"]
                        if r["service"] == "capture")
        camera.stop()
        wait_until(lambda: capture_row()["status"] == "degraded", 20,
                   "status to show the camera gone", poll=0.5)
        web = system.api_status()
        assert any(r["service"] == "capture" and r["status"] == "degraded"
                   for rows in web["services"].values() for r in rows), web["services"]
        pid = system.pipe.service_pid("capture")
        camera = MjpegCamera(jpegs, fps=15, port=port).start()
        wait_until(lambda: capture_row()["status"] == "ok", 20, "the camera back", poll=0.5)
        frames = capture_row()["counters"]["frames"]
        wait_until(lambda: capture_row()["counters"]["frames"] > frames + 15, 10,
                   "frames flowing again", poll=0.5)
        assert system.pipe.service_pid("capture") == pid, "capture restarted instead"
        assert system.status()[0] == 0
    finally:
        camera.stop()
