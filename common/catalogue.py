"""The catalogue: one SQLite database (WAL) of events, clips and snapshots.

Owned by the record service: ``CatalogueWriter`` (creates the file, runs the
migrations, writes) is for record only. Everyone else (web, notify, ``pisentry
export``) opens a ``CatalogueReader``: read-only at the SQLite level, no
migrations, and an error while record has not created the file yet. What
others want changed reaches record as a command (``Label`` for a verdict,
``Forget`` for a clip deleted after its backup). Location: ``Home.catalogue``
(``$PISENTRY_HOME/catalogue.sqlite``).

Read API (``CatalogueReader``; ``CatalogueWriter`` has it too)::

    cat = CatalogueReader(home.catalogue)
    cat.events(day=None, label=None, zone=None, camera=None, verdict=None,
               limit=50, offset=0) -> list[EventRow]  newest first
    cat.event(event_id)          -> EventRow | None
    cat.clips(day=None, camera=None, event_id=None, reason=None,
              limit=50, offset=0) -> list[ClipRow]    newest first
    cat.clip(clip_id)            -> ClipRow | None
    cat.clip_by_path(path)       -> ClipRow | None
    cat.latest_clip(camera=None) -> ClipRow | None    newest finished clip
    cat.clips_for(event_id)      -> list[ClipRow]     oldest first
    cat.snapshots_for(event_id)  -> list[SnapshotRow] oldest first
    cat.snapshots(day=None, camera=None, kind=None, limit=50, offset=0)
    cat.days(camera=None)        -> list[str]         "YYYY-MM-DD" with clips, newest first
    cat.close()

Write API (``CatalogueWriter``, record only): ``upsert_event``, ``add_clip``,
``finish_clip``, ``set_proof``, ``link_event``, ``delete_clip``, ``add_snapshot``,
``delete_snapshot``, ``set_label(event_id, verdict) -> bool``, and the
retention queries.

``day`` is the local calendar date ("YYYY-MM-DD") of the row's start, as
file names and folders use it. Times are ``time.time()`` seconds. Paths are
absolute. Rows are frozen dataclasses; JSON columns come back as Python lists.

Schema (``PRAGMA user_version`` = ``SCHEMA_VERSION``)::

    events(id TEXT PK               -- Motion.event_id
           camera, start, end,      -- end 0 while the event runs
           day TEXT, labels JSON list[str], zones JSON list[str],
           boxes JSON list[[x,y,w,h]] (last boxes seen, normalised),
           score REAL, area REAL, alert INTEGER 0/1,
           verdict TEXT             -- "" unknown, "real", "false_alarm" (users set it)
           verdict_ts REAL)
    clips(id INTEGER PK, camera, path TEXT UNIQUE, start, end, duration, size,
          frames INTEGER, day TEXT,
          reason TEXT               -- "event" | "continuous" | "edge" | "recovered"
          event_id TEXT             -- "" for continuous clips
          state TEXT,               -- "open" while written, "finished", "recovered"
          sha256 TEXT, prev_sha256 TEXT, chain_seq INTEGER, signature TEXT,
                                    -- the clip's proof (common.clipchain), "" / -1
                                    -- until it is signed
          missed REAL)              -- seconds of its event before its first frame that
                                    -- nobody held (the recorder was down when the event
                                    -- started): 0 for a whole clip, > 0 for a partial one
    snapshots(id INTEGER PK, camera, event_id TEXT ("" for periodic), kind TEXT
              ("event" | "periodic" | "manual" | "mask"), ts, day, path TEXT UNIQUE,
              width, height, size)
    clip_events(clip_id, event_id)  -- further events a clip covers (an event that
                                    -- starts during another's post-roll extends its clip)

Concurrency. The database is in WAL mode, so readers (web, notify) never block
the writer and see a consistent snapshot per query. Every connection sets
``busy_timeout`` (5 s) and every write is one short transaction (a single
statement or a few rows). A reader opens the file with ``mode=ro``; it works
while record writes, and raises ``CatalogueError`` when the database does not
exist yet.

Threading: one reader or writer may be shared between threads (a lock serialises
its connection); separate processes each open their own.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from common.messages import VERDICTS

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    start REAL NOT NULL,
    "end" REAL NOT NULL DEFAULT 0,
    day TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '[]',
    zones TEXT NOT NULL DEFAULT '[]',
    boxes TEXT NOT NULL DEFAULT '[]',
    score REAL NOT NULL DEFAULT 0,
    area REAL NOT NULL DEFAULT 0,
    alert INTEGER NOT NULL DEFAULT 1,
    verdict TEXT NOT NULL DEFAULT '',
    verdict_ts REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_day ON events(day, start);
CREATE INDEX IF NOT EXISTS events_start ON events(start);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    start REAL NOT NULL,
    "end" REAL NOT NULL DEFAULT 0,
    duration REAL NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    frames INTEGER NOT NULL DEFAULT 0,
    day TEXT NOT NULL,
    reason TEXT NOT NULL,
    event_id TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'open',
    sha256 TEXT NOT NULL DEFAULT '',
    prev_sha256 TEXT NOT NULL DEFAULT '',
    chain_seq INTEGER NOT NULL DEFAULT -1,
    signature TEXT NOT NULL DEFAULT '',
    missed REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS clips_day ON clips(day, start);
CREATE INDEX IF NOT EXISTS clips_start ON clips(start);
CREATE INDEX IF NOT EXISTS clips_event ON clips(event_id);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    event_id TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_event ON snapshots(event_id);
CREATE INDEX IF NOT EXISTS snapshots_day ON snapshots(day, ts);
CREATE TABLE IF NOT EXISTS clip_events (
    clip_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (clip_id, event_id)
);
"""


class CatalogueError(RuntimeError):
    """The catalogue cannot be opened or a value is not allowed."""


def day_of(ts: float) -> str:
    """Local calendar date of ``ts``, as folders and the ``day`` columns use it."""
    return time.strftime("%Y-%m-%d", time.localtime(ts))


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    camera: str
    start: float
    end: float
    day: str
    labels: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    score: float = 0.0
    area: float = 0.0
    alert: bool = True
    verdict: str = ""
    verdict_ts: float = 0.0


@dataclass(frozen=True, slots=True)
class ClipRow:
    id: int
    camera: str
    path: str
    start: float
    end: float
    duration: float
    size: int
    frames: int
    day: str
    reason: str
    event_id: str
    state: str
    sha256: str = ""
    prev_sha256: str = ""
    chain_seq: int = -1
    signature: str = ""
    missed: float = 0.0


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    id: int
    camera: str
    event_id: str
    kind: str
    ts: float
    day: str
    path: str
    width: int
    height: int
    size: int = 0


def _event(row: sqlite3.Row) -> EventRow:
    return EventRow(id=row["id"], camera=row["camera"], start=row["start"], end=row["end"],
                    day=row["day"], labels=json.loads(row["labels"]),
                    zones=json.loads(row["zones"]), boxes=json.loads(row["boxes"]),
                    score=row["score"], area=row["area"], alert=bool(row["alert"]),
                    verdict=row["verdict"], verdict_ts=row["verdict_ts"])


def _clip(row: sqlite3.Row) -> ClipRow:
    return ClipRow(**dict(row))


def _snapshot(row: sqlite3.Row) -> SnapshotRow:
    return SnapshotRow(**dict(row))


def _where(conds: list[str]) -> str:
    return (" WHERE " + " AND ".join(conds)) if conds else ""


class CatalogueReader:
    """A read-only connection; see the module docstring for the API."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = self._connect()
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._prepare()
        except sqlite3.Error as exc:
            raise CatalogueError(f"cannot open catalogue {self.path}: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise CatalogueError(f"catalogue {self.path} does not exist yet (record creates it)")
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                               timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)

    def _prepare(self) -> None:
        """Nothing for a reader: it never changes the file, schema included."""

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- low level ----------------------------------------------------------------
    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- read API -----------------------------------------------------------------
    def events(self, day: str | None = None, label: str | None = None,
               zone: str | None = None, camera: str | None = None,
               verdict: str | None = None, limit: int = 50, offset: int = 0) -> list[EventRow]:
        """Events, newest first, filtered by local day, detected label, zone,
        camera and user verdict."""
        conds: list[str] = []
        args: list[Any] = []
        if day:
            conds.append("day = ?")
            args.append(day)
        if camera:
            conds.append("camera = ?")
            args.append(camera)
        if label:
            conds.append("EXISTS (SELECT 1 FROM json_each(events.labels) WHERE value = ?)")
            args.append(label)
        if zone:
            conds.append("EXISTS (SELECT 1 FROM json_each(events.zones) WHERE value = ?)")
            args.append(zone)
        if verdict is not None:
            conds.append("verdict = ?")
            args.append(verdict)
        rows = self._query(f"SELECT * FROM events{_where(conds)} ORDER BY start DESC "
                           "LIMIT ? OFFSET ?", [*args, int(limit), int(offset)])
        return [_event(r) for r in rows]

    def event(self, event_id: str) -> EventRow | None:
        rows = self._query("SELECT * FROM events WHERE id = ?", (event_id,))
        return _event(rows[0]) if rows else None

    def clips(self, day: str | None = None, camera: str | None = None,
              event_id: str | None = None, reason: str | None = None,
              limit: int = 50, offset: int = 0) -> list[ClipRow]:
        """Clips, newest first (open ones included: check ``state``)."""
        conds: list[str] = []
        args: list[Any] = []
        for column, value in (("day", day), ("camera", camera), ("event_id", event_id),
                              ("reason", reason)):
            if value is not None:
                conds.append(f"{column} = ?")
                args.append(value)
        rows = self._query(f"SELECT * FROM clips{_where(conds)} ORDER BY start DESC "
                           "LIMIT ? OFFSET ?", [*args, int(limit), int(offset)])
        return [_clip(r) for r in rows]

    def clip(self, clip_id: int) -> ClipRow | None:
        rows = self._query("SELECT * FROM clips WHERE id = ?", (int(clip_id),))
        return _clip(rows[0]) if rows else None

    def clip_by_path(self, path: str | Path) -> ClipRow | None:
        rows = self._query("SELECT * FROM clips WHERE path = ?", (str(path),))
        return _clip(rows[0]) if rows else None

    def latest_clip(self, camera: str | None = None) -> ClipRow | None:
        """The newest clip that is no longer being written."""
        conds = ["state != 'open'"]
        args: list[Any] = []
        if camera:
            conds.append("camera = ?")
            args.append(camera)
        rows = self._query(f"SELECT * FROM clips{_where(conds)} ORDER BY start DESC LIMIT 1",
                           args)
        return _clip(rows[0]) if rows else None

    def clips_for(self, event_id: str) -> list[ClipRow]:
        """Clips of an event, including a clip it shares with an earlier event."""
        rows = self._query("SELECT * FROM clips WHERE event_id = ? OR id IN (SELECT clip_id "
                           "FROM clip_events WHERE event_id = ?) ORDER BY start",
                           (event_id, event_id))
        return [_clip(r) for r in rows]

    def snapshots_for(self, event_id: str) -> list[SnapshotRow]:
        rows = self._query("SELECT * FROM snapshots WHERE event_id = ? ORDER BY ts",
                           (event_id,))
        return [_snapshot(r) for r in rows]

    def snapshots(self, day: str | None = None, camera: str | None = None,
                  kind: str | None = None, limit: int = 50, offset: int = 0
                  ) -> list[SnapshotRow]:
        conds: list[str] = []
        args: list[Any] = []
        for column, value in (("day", day), ("camera", camera), ("kind", kind)):
            if value is not None:
                conds.append(f"{column} = ?")
                args.append(value)
        rows = self._query(f"SELECT * FROM snapshots{_where(conds)} ORDER BY ts DESC "
                           "LIMIT ? OFFSET ?", [*args, int(limit), int(offset)])
        return [_snapshot(r) for r in rows]

    def days(self, camera: str | None = None) -> list[str]:
        """Local days that have clips, newest first."""
        if camera:
            rows = self._query("SELECT DISTINCT day FROM clips WHERE camera = ? "
                               "ORDER BY day DESC", (camera,))
        else:
            rows = self._query("SELECT DISTINCT day FROM clips ORDER BY day DESC")
        return [r["day"] for r in rows]


class CatalogueWriter(CatalogueReader):
    """The record service's connection: creates the file, migrates, writes."""

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False, isolation_level=None)

    def _prepare(self) -> None:
        self._db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a power cut may lose the last commits but never
        # corrupts the file, and it saves an fsync per write (kind to SD cards).
        self._db.execute("PRAGMA synchronous = NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CatalogueError(f"catalogue {self.path} has schema {version}, newer than "
                                 f"this pisentry ({SCHEMA_VERSION})")
        if version == 1:  # clips gained their proofs
            for column in ("sha256 TEXT NOT NULL DEFAULT ''",
                           "prev_sha256 TEXT NOT NULL DEFAULT ''",
                           "chain_seq INTEGER NOT NULL DEFAULT -1",
                           "signature TEXT NOT NULL DEFAULT ''"):
                self._db.execute(f"ALTER TABLE clips ADD COLUMN {column}")
        self._db.executescript(_SCHEMA)
        # Added within schema 2 (a reader ignores it): clips say how much of
        # their event they missed.
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(clips)")}
        if "missed" not in columns:
            self._db.execute("ALTER TABLE clips ADD COLUMN missed REAL NOT NULL DEFAULT 0")
        if version < SCHEMA_VERSION:
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _write(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            # One statement in autocommit mode is one short transaction.
            return self._db.execute(sql, args)

    def set_label(self, event_id: str, verdict: str) -> bool:
        """Mark an event real or a false alarm ("" clears it): the ``Label``
        command, applied by record. Touches the verdict columns only. False
        when the event is unknown."""
        if verdict not in VERDICTS:
            raise CatalogueError(f"verdict {verdict!r} is not one of {VERDICTS}")
        cur = self._write("UPDATE events SET verdict = ?, verdict_ts = ? WHERE id = ?",
                          (verdict, time.time(), event_id))
        return cur.rowcount > 0

    def upsert_event(self, event_id: str, camera: str, start: float, *, end: float = 0.0,
                     labels: Iterable[str] = (), zones: Iterable[str] = (),
                     boxes: Iterable[Sequence[float]] = (), score: float = 0.0,
                     area: float = 0.0, alert: bool = True) -> None:
        """Insert an event or update what detect reported (never the verdict).
        Labels and zones accumulate over the event's updates."""
        old = self.event(event_id)
        labels_l = sorted(set(labels) | set(old.labels if old else ()))
        zones_l = sorted(set(zones) | set(old.zones if old else ()))
        boxes_l = [list(map(float, b)) for b in boxes] or (old.boxes if old else [])
        if old is None:
            self._write('INSERT OR IGNORE INTO events (id, camera, start, "end", day, labels, '
                        "zones, boxes, score, area, alert) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (event_id, camera, start, end, day_of(start), json.dumps(labels_l),
                         json.dumps(zones_l), json.dumps(boxes_l), score, area, int(alert)))
        else:
            self._write('UPDATE events SET "end" = ?, labels = ?, zones = ?, boxes = ?, '
                        "score = max(score, ?), area = max(area, ?), alert = ? WHERE id = ?",
                        (end or old.end, json.dumps(labels_l), json.dumps(zones_l),
                         json.dumps(boxes_l), score, area, int(alert or old.alert), event_id))

    def add_clip(self, path: str | Path, camera: str, start: float, reason: str,
                 event_id: str = "", state: str = "open", missed: float = 0.0) -> int:
        cur = self._write("INSERT OR REPLACE INTO clips (camera, path, start, day, reason, "
                          "event_id, state, missed) VALUES (?,?,?,?,?,?,?,?)",
                          (camera, str(path), start, day_of(start), reason, event_id, state,
                           missed))
        return int(cur.lastrowid or 0)

    def finish_clip(self, path: str | Path, *, end: float, duration: float, size: int,
                    frames: int, state: str = "finished", new_path: str | Path | None = None
                    ) -> None:
        """Record a clip's final figures (and its final path, when it was written
        in the staging folder)."""
        self._write('UPDATE clips SET "end" = ?, duration = ?, size = ?, frames = ?, '
                    "state = ?, path = ? WHERE path = ?",
                    (end, duration, size, frames, state, str(new_path or path), str(path)))

    def set_proof(self, path: str | Path, *, sha256: str, prev_sha256: str, chain_seq: int,
                  signature: str) -> None:
        """The clip's signature, as written beside it (``common.clipchain``)."""
        self._write("UPDATE clips SET sha256 = ?, prev_sha256 = ?, chain_seq = ?, "
                    "signature = ? WHERE path = ?",
                    (sha256, prev_sha256, chain_seq, signature, str(path)))

    def link_event(self, path: str | Path, event_id: str) -> None:
        """Note that the clip at ``path`` also covers ``event_id``."""
        self._write("INSERT OR IGNORE INTO clip_events (clip_id, event_id) "
                    "SELECT id, ? FROM clips WHERE path = ? AND event_id != ?",
                    (event_id, str(path), event_id))

    def delete_clip(self, path: str | Path) -> None:
        self._write("DELETE FROM clip_events WHERE clip_id IN (SELECT id FROM clips WHERE "
                    "path = ?)", (str(path),))
        self._write("DELETE FROM clips WHERE path = ?", (str(path),))

    def open_clips(self) -> list[ClipRow]:
        rows = self._query("SELECT * FROM clips WHERE state = 'open' ORDER BY start")
        return [_clip(r) for r in rows]

    def oldest_clips(self, limit: int = 100) -> list[ClipRow]:
        rows = self._query("SELECT * FROM clips ORDER BY start LIMIT ?", (int(limit),))
        return [_clip(r) for r in rows]

    def all_clip_paths(self) -> list[str]:
        return [r["path"] for r in self._query("SELECT path FROM clips")]

    def add_snapshot(self, path: str | Path, camera: str, ts: float, kind: str,
                     event_id: str = "", width: int = 0, height: int = 0, size: int = 0) -> int:
        cur = self._write("INSERT OR REPLACE INTO snapshots (camera, event_id, kind, ts, day, "
                          "path, width, height, size) VALUES (?,?,?,?,?,?,?,?,?)",
                          (camera, event_id, kind, ts, day_of(ts), str(path), width, height,
                           size))
        return int(cur.lastrowid or 0)

    def delete_snapshot(self, path: str | Path) -> None:
        self._write("DELETE FROM snapshots WHERE path = ?", (str(path),))

    def used_bytes(self) -> int:
        """Bytes of finished clips and snapshots, as catalogued."""
        rows = self._query("SELECT (SELECT coalesce(sum(size), 0) FROM clips WHERE state != "
                           "'open') + (SELECT coalesce(sum(size), 0) FROM snapshots)")
        return int(rows[0][0])

    def all_snapshots(self) -> list[SnapshotRow]:
        return [_snapshot(r) for r in self._query("SELECT * FROM snapshots ORDER BY ts")]

    def snapshots_before(self, ts: float, limit: int = 500) -> list[SnapshotRow]:
        rows = self._query("SELECT * FROM snapshots WHERE ts < ? ORDER BY ts LIMIT ?",
                           (ts, int(limit)))
        return [_snapshot(r) for r in rows]
