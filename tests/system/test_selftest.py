"""The self-test on a whole instance under supervisord with real peers: a run
asked from the web reports every stage and its delay, labels its event as a
test everywhere (never an intrusion) and says so silently; with the NAS down
the run fails at that stage and the failure is alerted."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.system.conftest import System
from tests.system.harness import API_HEADERS, HAVE_DETECT, wait_until

pytestmark = pytest.mark.skipif(not HAVE_DETECT, reason="needs the detect service")

TIMEOUT = 25  # the passing run takes under 10 s on a loaded 2-core machine


@pytest.fixture(scope="module")
def system(system_factory: Any) -> System:
    # One passer-by of the synthetic camera at its start, then none for an hour:
    # the only event after that is the self-test's.
    s = system_factory(capture={"object_period": 3600},
                       health={"selftest_timeout_seconds": TIMEOUT})
    wait_until(lambda: s.watch.finished(), 60, "the first passer-by's clip")
    return s


def run_selftest(system: System) -> dict[str, Any]:
    before = httpx.get(f"{system.base}/api/selftest", headers=API_HEADERS, timeout=5).json()
    r = httpx.post(f"{system.base}/api/selftest", headers=API_HEADERS, timeout=5)
    assert r.status_code == 202, r.text

    def finished() -> dict[str, Any] | None:
        now = httpx.get(f"{system.base}/api/selftest", headers=API_HEADERS, timeout=5).json()
        new = now.get("run_id") and now.get("run_id") != before.get("run_id")
        return now if new and now["report"] != "running" else None
    return wait_until(finished, TIMEOUT + 30, "the self-test to end")


def events(system: System) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"file:{system.home.catalogue}?mode=ro", uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM events ORDER BY start").fetchall()
    finally:
        db.close()


def test_a_self_test_reports_every_stage_and_its_delay(system: System) -> None:
    tg = system.peers.telegram
    started = time.time()
    result = run_selftest(system)
    assert result["ok"], result
    delays = result["delays"]
    assert set(delays) == {"detect", "record", "notify", "nas"}
    assert 0 < delays["detect"] < delays["record"] <= min(delays["notify"], delays["nas"])
    assert result["report"].startswith("self-test passed: detect ")
    # the test message: marked as a test and silent; then the report, silent too
    test_photo = [c for c in tg.of("sendPhoto") if c.t >= started
                  and c.fields.get("caption", "").startswith("[TEST]")]
    assert len(test_photo) == 1 and test_photo[0].fields["disable_notification"].lower() == "true"
    report = [c for c in tg.of("sendMessage") if c.t >= started
              and "self-test passed" in c.fields.get("text", "")]
    assert len(report) == 1 and report[0].fields["disable_notification"].lower() == "true"
    # never an intrusion: no alert went out for it, and the catalogue says test
    assert not [c for c in tg.of("sendPhoto") if c.t >= started
                and c.fields.get("caption", "").startswith("Motion on")]
    row = next(e for e in events(system) if e["id"] == result["event_id"])
    assert "selftest" in row["labels"] and row["alert"] == 0
    assert Path(result["clip_path"]).name in system.peers.nas_clips()


def test_a_self_test_with_the_nas_down_reports_the_failing_stage(system: System) -> None:
    tg = system.peers.telegram
    started = time.time()
    system.peers.nas.stop()
    try:
        result = run_selftest(system)
    finally:
        system.peers.nas.start()
    assert not result["ok"] and result["failed"] == "nas"
    assert set(result["delays"]) == {"detect", "record", "notify"}
    assert result["report"].startswith(
        f"self-test FAILED: no clip reached the NAS within {TIMEOUT} s (reached: detect ")
    alerted = [c for c in tg.of("sendMessage") if c.t >= started
               and "self-test FAILED: no clip reached the NAS" in c.fields.get("text", "")]
    assert len(alerted) == 1 and alerted[0].fields.get("disable_notification", "").lower() != "true"
