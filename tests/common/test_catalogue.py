"""The catalogue: schema, read API, read-only readers beside a writer, labels."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from common.catalogue import (
    SCHEMA_VERSION,
    CatalogueError,
    CatalogueReader,
    CatalogueWriter,
    day_of,
)


def test_events_clips_snapshots_round_trip(tmp_path):
    cat = CatalogueWriter(tmp_path / "c.sqlite")
    t0 = 1_700_000_000.0
    cat.upsert_event("e1", "cam1", t0, labels=["person"], zones=["door"], boxes=[[0, 0, .5, .5]])
    cat.upsert_event("e1", "cam1", t0, end=t0 + 9, labels=["car"], score=0.8)
    cat.upsert_event("e2", "cam2", t0 + 100, zones=["yard"])
    cid = cat.add_clip(tmp_path / "a.mp4", "cam1", t0 - 3, "event", "e1")
    cat.finish_clip(tmp_path / "a.mp4", end=t0 + 14, duration=17.0, size=1234, frames=255)
    cat.add_clip(tmp_path / "b.mp4", "cam2", t0 + 97, "event", "e2")  # still open
    cat.add_snapshot(tmp_path / "a.jpg", "cam1", t0 + 1, "event", "e1", 640, 480)

    e1 = cat.event("e1")
    assert e1 is not None and e1.end == t0 + 9 and e1.labels == ["car", "person"]
    assert e1.zones == ["door"] and e1.boxes == [[0, 0, .5, .5]] and e1.score == 0.8
    assert [e.id for e in cat.events()] == ["e2", "e1"]
    assert [e.id for e in cat.events(label="person")] == ["e1"]
    assert [e.id for e in cat.events(zone="yard")] == ["e2"]
    assert [e.id for e in cat.events(day=day_of(t0))] in (["e2", "e1"], ["e1"])
    assert cat.events(limit=1, offset=1)[0].id == "e1"
    clip = cat.clip(cid)
    assert clip is not None and clip.size == 1234 and clip.state == "finished"
    assert cat.latest_clip().path == str(tmp_path / "a.mp4")  # b is open
    assert [c.id for c in cat.clips_for("e1")] == [cid]
    assert [c.camera for c in cat.clips(camera="cam2")] == ["cam2"]
    assert cat.snapshots_for("e1")[0].width == 640
    assert cat.days() == sorted({day_of(t0 - 3), day_of(t0 + 97)}, reverse=True)


def test_set_label_and_bad_verdict(tmp_path):
    cat = CatalogueWriter(tmp_path / "c.sqlite")
    cat.upsert_event("e1", "cam1", 1.0)
    assert cat.set_label("e1", "false_alarm")
    assert cat.event("e1").verdict == "false_alarm"
    # A later update from detect must not wipe the user's verdict.
    cat.upsert_event("e1", "cam1", 1.0, end=5.0)
    assert cat.event("e1").verdict == "false_alarm"
    assert [e.id for e in cat.events(verdict="false_alarm")] == ["e1"]
    assert not cat.set_label("nope", "real")
    with pytest.raises(CatalogueError, match="verdict"):
        cat.set_label("e1", "maybe")


def test_readonly_missing_is_clear_error(tmp_path):
    with pytest.raises(CatalogueError, match="does not exist"):
        CatalogueReader(tmp_path / "none.sqlite")


def test_a_reader_never_changes_the_file(tmp_path):
    """No migration, no schema, no write: the file stays record's."""
    path = tmp_path / "c.sqlite"
    sqlite3.connect(path).close()  # an empty database, as if record had not set it up
    with CatalogueReader(path) as ro:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ro._db.execute("CREATE TABLE x (y)")
        assert not hasattr(ro, "set_label") and not hasattr(ro, "upsert_event")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_a_reader_in_another_process_while_record_writes(tmp_path):
    """Another process reads (mode=ro) while this one writes in a loop."""
    path = tmp_path / "c.sqlite"
    cat = CatalogueWriter(path)
    cat.upsert_event("e0", "cam1", 1.0)
    code = f"""
from common.catalogue import CatalogueReader
ro = CatalogueReader({str(path)!r})
seen = 0
for i in range(300):
    seen = max(seen, len(ro.events(limit=1000)))
print("seen", seen)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    i = 0
    while proc.poll() is None:
        i += 1
        cat.upsert_event(f"e{i}", "cam1", 1.0 + i)
        cat.add_clip(tmp_path / f"{i}.mp4", "cam1", 1.0 + i, "event", f"e{i}")
        time.sleep(0.001)
    out = proc.stdout.read()
    assert proc.returncode == 0, out
    assert int(out.split()[-1]) >= 1


def test_a_version_1_catalogue_gains_clip_proofs_and_keeps_its_clips(tmp_path):
    path = tmp_path / "c.sqlite"
    with sqlite3.connect(path) as db:  # the clips table as schema 1 had it
        db.executescript("""
            CREATE TABLE clips (id INTEGER PRIMARY KEY AUTOINCREMENT, camera TEXT NOT NULL,
                path TEXT NOT NULL UNIQUE, start REAL NOT NULL, "end" REAL NOT NULL DEFAULT 0,
                duration REAL NOT NULL DEFAULT 0, size INTEGER NOT NULL DEFAULT 0,
                frames INTEGER NOT NULL DEFAULT 0, day TEXT NOT NULL, reason TEXT NOT NULL,
                event_id TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'open');
            INSERT INTO clips (camera, path, start, day, reason, state)
                VALUES ('cam1', '/r/a.mp4', 1.0, '2026-12-01', 'event', 'finished');
            PRAGMA user_version = 1;""")
    with CatalogueWriter(path) as cat:
        old = cat.clip_by_path("/r/a.mp4")
        assert old is not None and (old.sha256, old.chain_seq) == ("", -1)
        cat.set_proof("/r/a.mp4", sha256="ab" * 32, prev_sha256="", chain_seq=0,
                      signature="c2ln")
    with CatalogueReader(path) as ro:
        row = ro.clip_by_path("/r/a.mp4")
        assert row is not None and (row.sha256, row.chain_seq, row.signature) == (
            "ab" * 32, 0, "c2ln")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
