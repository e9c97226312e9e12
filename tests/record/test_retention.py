"""Retention: oldest first, never open or unuploaded clips until the disk is about to fill."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from common.catalogue import CatalogueWriter
from common.config import RecordConfig
from common.messages import Motion
from services.record.recorder import Recorder
from services.record.retention import Item, Needs, RetentionKeeper, needs, plan, queued_paths
from tests.record.h264gen import make_gop_stream, repeat

T0 = 1_700_000_000.0


def test_plan_age_keeps_protected_and_open():
    items = [Item("a", 0, 10), Item("b", 1, 10), Item("c", 2, 10), Item("d", 99, 10)]
    p = plan(items, now=100, max_age=50, want=Needs(0, 0), protected={"b"}, open_paths={"c"})
    assert [i.path for i in p.delete] == ["a"] and not p.forced


def test_plan_soft_need_spares_protected_hard_need_does_not():
    items = [Item(n, i, 10) for i, n in enumerate("abcd")]
    soft = plan(items, now=0, max_age=0, want=Needs(soft=25, hard=0), protected={"a", "b"},
                open_paths=set())
    assert [i.path for i in soft.delete] == ["c", "d"] and not soft.forced
    hard = plan(items, now=0, max_age=0, want=Needs(soft=30, hard=30), protected={"a", "b"},
                open_paths={"d"})
    assert [i.path for i in hard.delete] == ["c"]
    assert [i.path for i in hard.forced] == ["a", "b"] and hard.short == 0


def test_needs_quota_is_hard_min_free_is_soft():
    assert needs(used=90, free=10**9, quota=100, min_free=0, reserve=20) == Needs(10, 10)
    assert needs(used=0, free=50, quota=0, min_free=100, reserve=20) == Needs(70, 0)
    assert needs(used=0, free=5, quota=0, min_free=100, reserve=20) == Needs(115, 15)


def test_queued_paths_reads_backup_jobs(tmp_path):
    (tmp_path / "1.json").write_text(json.dumps({"path": "/x/a.mp4", "kind": "clip"}))
    (tmp_path / "2.json").write_text("{half")  # being written right now
    (tmp_path / "3.tmp").write_text(json.dumps({"path": "/x/b.mp4"}))
    assert queued_paths(tmp_path) == {"/x/a.mp4"}


def _du(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_small_quota_deletes_oldest_never_exceeds_and_spares_queued(tmp_path):
    """A full disk simulated with a small quota while events keep coming."""
    storage, queue = tmp_path / "rec", tmp_path / "queue" / "backup"
    queue.mkdir(parents=True)
    quota = 2_000_000
    cfg = RecordConfig(rec_sec_before=1.0, rec_sec_after=1.0,
                       retention={"max_total_gb": quota / 1e9, "min_free_mb": 0,
                                  "max_age_days": 0, "reserve_seconds": 5})
    cat = CatalogueWriter(tmp_path / "cat.sqlite")
    now = [T0]
    rec = Recorder(cfg, "cam1", storage, cat, lambda: now[0])
    # A real disk is far from full: only the quota limits.
    keeper = RetentionKeeper(cfg.retention, storage, cat, queue,
                             disk_usage=lambda p: shutil.disk_usage(p))
    base = make_gop_stream(4.0, fps=10.0, t0=T0, bitrate=400_000, noise=True)
    packets = repeat(base, 400.0, T0)
    finished: list[str] = []
    queued: set[str] = set()
    deleted_plain: list[str] = []
    forced: list[str] = []
    next_check = T0
    peak = 0
    n_event = 0
    for p in packets:
        now[0] = p.ts
        k = round((p.ts - T0) * 10)
        if k % 100 == 20:  # an event every 10 s: 3 s of motion
            n_event += 1
            rec.on_motion(Motion("cam1", 0, p.ts, f"e{n_event}", "start"))
        if k % 100 == 50:
            rec.on_motion(Motion("cam1", 0, p.ts, f"e{n_event}", "end"))
        rec.on_video(p)
        for note in rec.outbox:
            if note.phase == "finished":
                finished.append(note.path)
                if len(finished) > 8:  # from the 9th clip on, nothing gets uploaded
                    queued.add(note.path)
                    (queue / f"{len(finished)}.json").write_text(json.dumps({"path": note.path}))
        rec.outbox.clear()
        if p.ts >= next_check:
            next_check = p.ts + 1.0
            result = keeper.check(p.ts, rec.open_paths(), rec.growing_bytes(),
                                  rec.ring.byte_rate())
            for item in result.delete:
                assert item.path not in queued
                deleted_plain.append(item.path)
            if result.forced:
                # Protected clips go only once no unprotected finished clip is left.
                left = {c.path for c in cat.clips(limit=10_000) if c.state != "open"}
                assert left <= queued
                assert all(i.path in queued for i in result.forced)
                forced.extend(i.path for i in result.forced)
        used = _du(storage)
        peak = max(peak, used)
        assert used <= quota, f"{used} bytes on disk, quota {quota}"
    assert len(finished) >= 30
    assert deleted_plain == finished[:len(deleted_plain)]  # oldest first
    assert set(finished[:8]) <= set(deleted_plain)
    assert forced and forced == sorted(forced, key=finished.index)  # oldest first too
    assert peak > quota * 0.5  # the quota was really what limited it
    # The catalogue agrees with the disk.
    on_disk = {str(p) for p in storage.rglob("*.mp4")}
    assert on_disk == {c.path for c in cat.clips(limit=10_000)}
    assert keeper.forced == len(forced)


def test_a_disk_that_stays_full_is_logged_once_then_every_ten_minutes(tmp_path, caplog):
    """Checked every second, a full disk with only an open clip left says so
    when it fills, again after the repeat period, and anew after it recovers."""
    storage = tmp_path / "rec"
    storage.mkdir()
    cat = CatalogueWriter(tmp_path / "cat.sqlite")
    free = [0]
    keeper = RetentionKeeper(RecordConfig().retention, storage, cat, tmp_path / "queue",
                             disk_usage=lambda p: shutil.disk_usage(p)._replace(free=free[0]))

    def full_lines() -> int:
        return sum("over its limit" in r.getMessage() for r in caplog.records)

    caplog.set_level("ERROR", logger="services.record.retention")
    for second in range(700):
        assert keeper.check(T0 + second, set(), 0, 0.0).short > 0
    assert full_lines() == 2  # at 0 s and at 600 s
    free[0] = 1 << 40  # space again
    keeper.check(T0 + 701, set(), 0, 0.0)
    free[0] = 0
    keeper.check(T0 + 702, set(), 0, 0.0)
    assert full_lines() == 3
