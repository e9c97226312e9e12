"""kill -9 of each service in turn while passers-by keep walking in front of
the synthetic camera. Afterwards every event that happened has its clip
(decodable to the last frame), its Telegram alert and its NAS copy, each
exactly once, and each killed service came back (a new pid heartbeating,
``pisentry status`` healthy) within a generous deadline.

How fast it comes back is a figure, not a test: bench/faults.py runs the
5-kills-each variant the issue asks for and reports the seconds against its
5 s target (a loaded CI machine once took 5.08 s here).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.system.conftest import System, decodable_frames
from tests.system.harness import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

KILL_ORDER = ["detect", "record", "notify", "capture", "ir", "web"]


def kill_and_time(system: System, service: str) -> float:
    """kill -9 one service; seconds until its new process heartbeats and
    ``pisentry status`` is healthy again."""
    old = system.pipe.service_pid(service)
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)

    def back() -> bool:
        hb = system.watch.heartbeat(service)
        return hb is not None and hb.pid != old and hb.ts > time.time() - 1.5

    wait_until(back, 20, f"{service} to come back", poll=0.05)
    wait_until(lambda: system.status()[0] == 0, 20, "pisentry status healthy", poll=0.2)
    return time.monotonic() - t0


def settle(system: System, before: float, timeout: float = 60) -> None:
    """Every clip begun before ``before`` finished and shipped (passers-by go
    on walking meanwhile, so later clips may be open)."""
    peers = system.peers

    def done() -> bool:
        clips = [c for c in system.clips() if c["start"] < before]
        if not clips or any(c["state"] == "open" for c in clips):
            return False
        names = {os.path.basename(c["path"]) for c in clips}
        return names <= set(peers.nas_clips())
    try:
        wait_until(done, timeout, "every clip finished and on the NAS", poll=0.5)
    except AssertionError:
        rows = [(os.path.basename(c["path"]), c["state"], c["reason"], c["event_id"],
                 round(c["duration"], 1)) for c in system.clips()]
        raise AssertionError(f"clips {rows}\nNAS {sorted(peers.nas_clips())}\n"
                             f"{system.pipe.output()}") from None


def check_whole(system: System, events: list[str], before: float) -> dict[str, object]:
    peers = system.peers
    clips = [c for c in system.clips() if c["start"] < before]
    by_event = system.clip_events()
    nas = peers.nas_clips()
    problems: list[str] = []
    for c in clips:
        path = c["path"]
        name = os.path.basename(path)
        frames = decodable_frames(path)
        if frames < 5:
            problems.append(f"{name}: {frames} frames")
        copies = nas.get(name, [])
        if len(copies) != 1:
            problems.append(f"{name}: {len(copies)} copies on the NAS")
        elif copies[0].read_bytes() != Path(path).read_bytes():
            problems.append(f"{name}: the NAS copy differs")
    for event in events:
        if not by_event.get(event):
            problems.append(f"event {event}: no clip")
        photos = peers.telegram.alerts_for(event)
        if photos != 1:
            problems.append(f"event {event}: {photos} Telegram alerts")
    for name in {os.path.basename(c["path"]) for c in clips if c["event_id"]}:
        if peers.telegram.videos_named(name) > 1:
            problems.append(f"{name}: sent to Telegram more than once")
    assert not problems, "\n".join(problems) + "\n" + system.pipe.output()
    return {"clips": len(clips), "events": len(events)}


def test_kill_each_service_while_events_happen(system_factory) -> None:
    system = system_factory(capture={"object_period": 8},
                            record={"event_timeout_seconds": 10})
    wait_until(lambda: system.watch.finished(), 30, "a first clip")
    times: dict[str, float] = {}
    for service in KILL_ORDER:
        times[service] = kill_and_time(system, service)
        time.sleep(4)  # events go on between kills
    time.sleep(2)
    before = time.time()
    events = system.watch.started_events()
    settle(system, before)
    figures = check_whole(system, events, before)
    print(f"recovery seconds per kill: {times}; {figures}")
    assert len(events) >= 5
