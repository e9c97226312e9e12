"""Retention: by age, by total size and by free space, oldest first.

Two kinds of limit:

* soft: ``max_age_days`` and ``min_free_mb``. Only clips that are neither open
  (being written) nor waiting for upload (listed in the notify service's
  backup queue) are deleted to meet them.
* hard: ``max_total_gb`` (a quota: recordings never grow past it) and the disk
  itself (less than ``reserve`` free). When deleting every unprotected file
  is not enough, the disk is about to fill and protected (queued) clips go
  too, oldest first; ``Plan.forced`` lists them so the service can say so.
  An open clip is never deleted.

``reserve`` is headroom in bytes (``reserve_seconds`` of the stream) kept
under every limit, so the clips growing between two checks cannot cross it.

``plan`` is pure; ``RetentionKeeper`` applies it to the disk and the catalogue.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from common.catalogue import CatalogueWriter
from common.clipchain import proof_path
from services.record.naming import within

if TYPE_CHECKING:
    from common.config import RetentionConfig

log = logging.getLogger(__name__)

MIN_RESERVE = 256 * 1024
AGE_CHECK_SECONDS = 60.0
# A disk that stays full is checked every second: say so once, then this often.
SHORT_LOG_REPEAT_SECONDS = 600.0


@dataclass(frozen=True)
class Item:
    path: str
    start: float
    size: int
    kind: str = "clip"  # "clip" | "snapshot"


@dataclass
class Plan:
    delete: list[Item] = field(default_factory=list)  # unprotected, oldest first
    forced: list[Item] = field(default_factory=list)  # protected, deleted to avoid a full disk
    short: int = 0  # bytes still over a hard limit after the plan (only open clips left)

    @property
    def all(self) -> list[Item]:
        return self.delete + self.forced


class Needs(NamedTuple):
    soft: int  # bytes to free from unprotected items
    hard: int  # bytes that must be freed, protected items included


def needs(*, used: int, free: int, quota: int, min_free: int, reserve: int) -> Needs:
    quota_need = max(0, used + reserve - quota) if quota else 0
    soft = max(quota_need, max(0, min_free + reserve - free) if min_free else 0)
    hard = max(quota_need, max(0, reserve - free))
    return Needs(soft, hard)


def plan(items: Iterable[Item], *, now: float, max_age: float, want: Needs,
         protected: set[str], open_paths: set[str]) -> Plan:
    """What to delete. ``items`` in any order; ``max_age`` seconds (0: none)."""
    ordered = sorted(items, key=lambda i: i.start)
    out = Plan()
    freed = 0
    kept: list[Item] = []
    for item in ordered:
        if item.path in open_paths:
            continue
        if item.path in protected:
            kept.append(item)
        elif (max_age and item.start < now - max_age) or freed < want.soft:
            out.delete.append(item)
            freed += item.size
        # else: younger than the age limit and no space is needed
    for item in kept:
        if freed >= want.hard:
            break
        out.forced.append(item)
        freed += item.size
    out.short = max(0, want.hard - freed)
    return out


def queued_paths(folder: Path) -> set[str]:
    """Clip paths waiting for upload: ``{"path": ...}`` of each ``*.json`` job."""
    out: set[str] = set()
    try:
        entries = list(folder.glob("*.json"))
    except OSError:
        return out
    for entry in entries:
        try:
            job = json.loads(entry.read_text(encoding="utf-8"))
            out.add(str(job["path"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written or removed right now; the next pass sees it
    return out


class RetentionKeeper:
    """Applies ``plan`` to the recordings folder and the catalogue."""

    def __init__(self, cfg: RetentionConfig, storage: Path, catalogue: CatalogueWriter,
                 queue_folder: Path,
                 disk_usage: Callable[[Path], Any] = shutil.disk_usage) -> None:
        self.cfg = cfg
        self.storage = storage
        self.catalogue = catalogue
        self.queue_folder = queue_folder
        self.disk_usage = disk_usage
        self.quota = int(cfg.max_total_gb * 1e9)
        self.min_free = int(cfg.min_free_mb * 1e6)
        self._next_age_check = 0.0
        self.deleted = 0
        self.forced = 0
        self.last_forced: list[str] = []
        self._short_logged = -1e18  # a full disk is logged when it starts, then every REPEAT

    def check(self, now: float, open_paths: set[str], growing: int, byte_rate: float) -> Plan:
        """Delete what the limits ask for; cheap when nothing is due."""
        reserve = max(MIN_RESERVE, int(byte_rate * self.cfg.reserve_seconds))
        used = self.catalogue.used_bytes() + growing
        try:
            free = int(self.disk_usage(self.storage).free)
        except OSError:
            free = 1 << 62
        want = needs(used=used, free=free, quota=self.quota, min_free=self.min_free,
                     reserve=reserve)
        age_due = bool(self.cfg.max_age_days) and now >= self._next_age_check
        if not (want.soft or want.hard or age_due):
            self._short_logged = -1e18
            return Plan()
        if age_due:
            self._next_age_check = now + AGE_CHECK_SECONDS
        items = [Item(c.path, c.start, c.size) for c in self.catalogue.oldest_clips(1 << 30)
                 if c.state != "open"]
        items += [Item(s.path, s.ts, s.size, "snapshot") for s in self.catalogue.all_snapshots()]
        result = plan(items, now=now, max_age=self.cfg.max_age_days * 86400, want=want,
                      protected=queued_paths(self.queue_folder), open_paths=open_paths)
        for item in result.all:
            self._delete(item)
        self.deleted += len(result.delete)
        self.forced += len(result.forced)
        self.last_forced = [i.path for i in result.forced]
        if result.forced:
            log.warning("disk about to fill: deleted %d clip(s) still waiting for upload: %s",
                        len(result.forced), ", ".join(self.last_forced[:5]))
        if result.short and now - self._short_logged >= SHORT_LOG_REPEAT_SECONDS:
            self._short_logged = now
            log.error("storage still %d bytes over its limit; only open clips are left",
                      result.short)
        elif not result.short:
            self._short_logged = -1e18
        return result

    def _delete(self, item: Item) -> None:
        path = Path(item.path)
        try:
            # unlink never follows the last link, but a linked folder would lead
            # it out of the storage folder: then only the row goes.
            if within(path.parent, self.storage):
                path.unlink(missing_ok=True)
                proof_path(path).unlink(missing_ok=True)
            else:
                log.warning("not deleting %s: outside the storage folder", path)
        except OSError as exc:
            log.error("cannot delete %s: %s", path, exc)
            return
        if item.kind == "clip":
            self.catalogue.delete_clip(item.path)
        else:
            self.catalogue.delete_snapshot(item.path)
        # Remove emptied day/month/year folders, never the storage root.
        parent = path.parent
        while parent != self.storage and self.storage in parent.parents:
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = parent.parent
