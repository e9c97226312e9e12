"""Backups to a NAS that lose nothing.

``BackupManager`` runs one thread that drains the persistent ``BackupQueue``:

- a job is uploaded to a temporary name (``.NAME.part``) in
  ``remote_dir/YYYY/MM/DD`` and renamed once its size is checked, so the NAS
  never shows a partial clip under a real name;
- before uploading, the final name is looked up: a file of the expected size
  means an earlier run was killed between rename and dequeue, so the job is
  done, never uploaded twice;
- a failed connection or upload is retried with exponential back-off (capped
  by ``retry_max_seconds``); the queue on disk survives restarts;
- clips of an ongoing event are shipped in pieces as they grow (``NAME.pieceN``,
  N the byte offset), so a stolen camera has already sent its first seconds;
  once the whole clip is safe, its pieces are removed from the NAS;
- optional encryption with a public key (see ``crypto``);
- remote retention: day folders older than ``limit_days`` are deleted.

``UploadTrigger`` decides when queued clips go: at once, after N
clips, or at given minutes of the hour. Pieces always go at once: their whole
point is to leave before the camera does.

Threading: ``enqueue_*`` and ``stats`` are called from the service thread;
everything else runs on the backup thread. They share only the queue folder
(atomic files) and a condition variable.
"""

from __future__ import annotations

import logging
import os
import posixpath
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko

from common.clipchain import SUFFIX as PROOF_SUFFIX
from common.clipchain import proof_path
from services.notify import crypto
from services.notify.backup_queue import BackupQueue, Job, backoff
from services.notify.remote import (
    HostKeyError,
    RemoteError,
    RemoteStore,
    Throttle,
    Writer,
    connect,
    copy_into,
)

if TYPE_CHECKING:
    from common.config import BackupConfig

log = logging.getLogger(__name__)

RETENTION_PERIOD = 3600.0


class UploadTrigger:
    """When queued clips may go. Once triggered, the queue is flushed until empty."""

    def __init__(self, mode: str, count: int = 1, minutes: list[int] | None = None) -> None:
        self.mode = mode
        self.count = count
        self.minutes = set(minutes or [])
        self.flushing = False
        self._last_minute: tuple[int, int] | None = None

    def due(self, now: float, pending_clips: int) -> bool:
        if pending_clips == 0:
            self.flushing = False
            return False
        if self.mode == "immediate" or self.flushing:
            return True
        if self.mode == "count" and pending_clips >= self.count:
            self.flushing = True
        elif self.mode == "minutes":
            t = time.localtime(now)
            slot = (t.tm_yday, t.tm_hour * 60 + t.tm_min)
            if t.tm_min in self.minutes and slot != self._last_minute:
                self._last_minute = slot
                self.flushing = True
        return self.flushing


def remote_name(cfg: BackupConfig, job: Job, encrypted: bool) -> tuple[str, str]:
    """(folder, file name) of a job on the NAS: ``remote_dir/YYYY/MM/DD``."""
    folder = posixpath.join(cfg.remote_dir, time.strftime("%Y/%m/%d", time.localtime(job.start)))
    name = os.path.basename(job.path)
    if job.kind == "piece":
        name += f".piece{job.offset:012d}"
    if encrypted:
        name += crypto.SUFFIX
    return folder, name


def apply_retention(store: RemoteStore, remote_dir: str, limit_days: float, now: float) -> int:
    """Delete day folders (``YYYY/MM/DD``) older than ``limit_days``; returns files removed."""
    cutoff = time.strftime("%Y%m%d", time.localtime(now - limit_days * 86400))
    removed = 0
    for year in store.listdir(remote_dir):
        for month in store.listdir(posixpath.join(remote_dir, year)):
            for day in store.listdir(posixpath.join(remote_dir, year, month)):
                stamp = f"{year}{month}{day}"
                if not (stamp.isdigit() and len(stamp) == 8) or stamp >= cutoff:
                    continue
                folder = posixpath.join(remote_dir, year, month, day)
                for name in store.listdir(folder):
                    store.remove(posixpath.join(folder, name))
                    removed += 1
                store.rmdir(folder)
            month_dir = posixpath.join(remote_dir, year, month)
            if not store.listdir(month_dir):
                store.rmdir(month_dir)
        year_dir = posixpath.join(remote_dir, year)
        if not store.listdir(year_dir):
            store.rmdir(year_dir)
    return removed


class BackupManager:
    def __init__(self, cfg: BackupConfig, queue_dir: Path,
                 connector: Callable[[BackupConfig], RemoteStore] = connect,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.queue = BackupQueue(queue_dir)
        self.connector = connector
        self.clock = clock
        self.public_key = (crypto.load_public_key(cfg.encrypt_public_key)
                           if cfg.encrypt_public_key else None)
        self.trigger = UploadTrigger(cfg.trigger, cfg.trigger_count, cfg.trigger_minutes)
        self.counters = {"uploaded": 0, "skipped_existing": 0, "failed": 0, "bytes": 0,
                         "retention_removed": 0}
        self.last_error = ""
        self._store: RemoteStore | None = None
        self._connect_failures = 0
        # Local clips deleted after a confirmed upload, for the service thread to
        # tell the recorder (it owns the catalogue, and sockets are not shared).
        self.deleted_local: queue.Queue[str] = queue.Queue()
        self.uploaded: queue.Queue[str] = queue.Queue()  # clips now on the NAS, for the service
        self._next_connect = 0.0
        self._next_retention = 0.0
        self._piece_offsets: dict[str, int] = {}
        self._wake = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # -- service thread -------------------------------------------------------
    def enqueue_clip(self, path: str, camera: str, start: float) -> bool:
        """Queue a finished clip, and its proof when it has one (the signature
        travels beside it, but is not a clip to ``trigger_count``); pending
        pieces of it are dropped (the clip has them)."""
        job = Job(path=path, kind="clip", camera=camera, start=start, created=self.clock())
        # Pieces are matched by file name: with a staging folder the growing clip
        # lives elsewhere than the finished one.
        name = os.path.basename(path)
        for pending in self.queue.jobs():
            if pending.kind == "piece" and os.path.basename(pending.path) == name:
                self.queue.remove(pending)
        self._piece_offsets.pop(name, None)
        added = self.queue.add(job)
        proof = proof_path(Path(path))
        if proof.exists():
            self.queue.add(Job(path=str(proof), kind="proof", camera=camera, start=start,
                               created=self.clock()))
        self._notify()
        return added

    def enqueue_piece(self, path: str, camera: str, start: float, size: int) -> bool:
        """Queue the bytes a growing clip gained since its last piece."""
        if not self.cfg.pieces:
            return False
        name = os.path.basename(path)
        offset = self._piece_offsets.get(name, 0)
        if size <= offset:
            return False
        job = Job(path=path, kind="piece", camera=camera, start=start, created=self.clock(),
                  offset=offset, length=size - offset)
        self._piece_offsets[name] = size
        added = self.queue.add(job)
        self._notify()
        return added

    def stats(self) -> dict[str, object]:
        return {"backup_pending": len(self.queue), **{f"backup_{k}": v for k, v in
                                                       self.counters.items()},
                "backup_last_error": self.last_error}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="backup", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 0.5) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    # -- backup thread -----------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            try:
                wait = self.step()
            except Exception as exc:  # never let the thread die: log and back off
                log.exception("backup step failed")
                self.last_error = str(exc)[:200]
                wait = 5.0
            with self._wake:
                if not self._stop:
                    self._wake.wait(max(0.05, min(wait, 5.0)))
        self._disconnect()

    def step(self) -> float:
        """Upload what is due; returns how long to sleep before the next look."""
        now = self.clock()
        jobs = self.queue.jobs()
        clips = {j.path for j in jobs if j.kind == "clip"}
        clips_due = self.trigger.due(now, len(clips))

        def goes(j: Job) -> bool:
            # A proof goes with its clip, or alone once its clip has gone.
            return j.kind == "piece" or clips_due or \
                (j.kind == "proof" and j.path.removesuffix(PROOF_SUFFIX) not in clips)

        due = [j for j in jobs if goes(j) and j.next_try <= now]
        if not due:
            if self._store is not None and not jobs:
                self._maybe_retention(now)
            later = [j.next_try - now for j in jobs if goes(j)]
            return min(later, default=1.0)
        if now < self._next_connect:
            return self._next_connect - now
        try:
            store = self._connected()
        except RemoteError as exc:
            self._connect_failures += 1
            delay = backoff(self._connect_failures, self.cfg.retry_max_seconds)
            self._next_connect = now + delay
            self.last_error = str(exc)
            level = logging.ERROR if isinstance(exc, HostKeyError) else logging.WARNING
            log.log(level, "backup: %s; retrying in %.1f s", exc, delay)
            return delay
        self._connect_failures = 0
        for job in due:
            if self._stop:
                break
            if not os.path.exists(job.path):
                log.warning("backup: %s is gone before upload; dropped", job.path)
                self.queue.remove(job)
                continue
            try:
                self.upload(store, job)
            except (RemoteError, OSError, paramiko.SSHException, EOFError) as exc:
                self._failed(job, exc)
                self._disconnect()  # a broken connection is rebuilt on the next try
                return 0.05
        self._maybe_retention(self.clock())
        return 0.05

    def _failed(self, job: Job, exc: Exception) -> None:
        job.attempts += 1
        delay = backoff(job.attempts, self.cfg.retry_max_seconds)
        job.next_try = self.clock() + delay
        job.last_error = str(exc)[:200]
        self.last_error = job.last_error
        self.counters["failed"] += 1
        if os.path.exists(self.queue.folder / f"{job.id}.json"):
            self.queue.save(job)
        log.warning("backup of %s failed (try %d): %s; retrying in %.1f s",
                    os.path.basename(job.path), job.attempts, exc, delay)

    def _connected(self) -> RemoteStore:
        if self._store is None:
            self._store = self.connector(self.cfg)
        return self._store

    def _disconnect(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except Exception:  # noqa: BLE001, S110 - closing a dead connection may raise anything
                pass
            self._store = None

    def upload(self, store: RemoteStore, job: Job) -> None:
        plain_size = job.length if job.kind == "piece" else os.path.getsize(job.path)
        key = self.public_key
        size = crypto.encrypted_size(plain_size, key) if key else plain_size
        folder, name = remote_name(self.cfg, job, key is not None)
        final = posixpath.join(folder, name)
        store.makedirs(folder)
        if store.size(final) == size:
            # Uploaded and renamed before a crash took the queue entry with it.
            log.info("backup: %s already on the NAS; not sent again", final)
            self.counters["skipped_existing"] += 1
        else:
            tmp = posixpath.join(folder, f".{name}.part")
            throttle = Throttle(self.cfg.rate_limit_kbps)

            def write(dst: Writer) -> int:
                with open(job.path, "rb") as src:
                    src.seek(job.offset)
                    if key is None:
                        return copy_into(src, dst, plain_size, throttle)
                    return crypto.encrypt_stream(src, _Counting(dst, throttle), key, plain_size)

            sent = store.put(write, size, tmp)
            landed = store.size(tmp)
            if sent != size or landed != size:
                store.remove(tmp)
                raise RemoteError(f"{tmp} has {landed} bytes, expected {size}")
            store.rename(tmp, final)
            self.counters["bytes"] += size
            self.counters["uploaded"] += 1
            log.info("backup: %s -> %s (%d bytes)", job.path, final, size)
        if job.kind == "clip":
            self._after_clip(store, folder, name, job)
            self.uploaded.put(job.path)
        elif job.kind == "proof" and self.cfg.delete_local_after_upload:
            Path(job.path).unlink(missing_ok=True)
        self.queue.remove(job)

    def _after_clip(self, store: RemoteStore, folder: str, name: str, job: Job) -> None:
        base = os.path.basename(job.path) + ".piece"
        for other in store.listdir(folder):
            if other.startswith((base, "." + base)):
                store.remove(posixpath.join(folder, other))
        if self.cfg.delete_local_after_upload:
            Path(job.path).unlink(missing_ok=True)
            log.info("backup: deleted local %s after a confirmed upload", job.path)
            self.deleted_local.put(job.path)

    def _maybe_retention(self, now: float) -> None:
        if self.cfg.limit_days <= 0 or now < self._next_retention or self._store is None:
            return
        self._next_retention = now + RETENTION_PERIOD
        removed = apply_retention(self._store, self.cfg.remote_dir, self.cfg.limit_days, now)
        self.counters["retention_removed"] += removed
        if removed:
            log.info("backup: remote retention removed %d file(s) older than %g days",
                     removed, self.cfg.limit_days)


class _Counting:
    """Passes writes through to the NAS, paced by the throttle."""

    def __init__(self, dst: Writer, throttle: Throttle) -> None:
        self.dst = dst
        self.throttle = throttle

    def write(self, data: bytes) -> int:
        self.dst.write(data)
        self.throttle.add(len(data))
        return len(data)
