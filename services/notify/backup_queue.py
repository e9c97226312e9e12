"""The persistent upload queue: one JSON file per pending upload.

Lives in ``$PISENTRY_HOME/queue/backup``. Each file holds at least
``{"path": "<absolute local clip path>"}``: the recorder's retention reads
this folder and never deletes a clip still waiting for upload, so that key
and its meaning must not change.

A job's file name is derived from what it uploads (clip path, piece offset),
so enqueuing the same clip twice is a no-op, and a job survives kill -9: it
is written (temp file, fsync, rename) before anything is sent and removed
only after the NAS confirmed the file under its final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from common.paths import write_json_atomically

log = logging.getLogger(__name__)


@dataclass
class Job:
    path: str  # absolute local clip path (read by the recorder's retention)
    kind: str  # "clip" | "piece" | "proof" (a clip's signature, sent with it)
    camera: str
    start: float  # clip start time: picks the remote YYYY/MM/DD
    created: float
    offset: int = 0  # piece: first byte of the clip it carries
    length: int = 0  # piece: how many bytes
    attempts: int = 0
    next_try: float = 0.0
    last_error: str = ""

    @property
    def id(self) -> str:
        key = f"{self.kind}:{self.path}:{self.offset}"
        return hashlib.sha1(key.encode()).hexdigest()[:20]


def backoff(attempts: int, longest: float, rng: random.Random | None = None) -> float:
    """Seconds before try ``attempts + 1``: doubling from 1 s, capped, with
    jitter so several cameras do not hammer a NAS that comes back in step."""
    base = min(longest, 2.0 ** max(0, attempts - 1))
    return base * (0.8 + 0.4 * (rng or random).random())


class BackupQueue:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    def _file(self, job: Job) -> Path:
        return self.folder / f"{job.id}.json"

    def add(self, job: Job) -> bool:
        """Queue ``job``; False when the same upload is already queued."""
        if self._file(job).exists():
            return False
        self.save(job)
        return True

    def save(self, job: Job) -> None:
        write_json_atomically(self._file(job), dataclasses.asdict(job))

    def remove(self, job: Job) -> None:
        self._file(job).unlink(missing_ok=True)

    def jobs(self) -> list[Job]:
        """Every queued job, oldest first; unreadable files are set aside."""
        out: list[Job] = []
        names = {f.name for f in dataclasses.fields(Job)}
        for file in self.folder.glob("*.json"):
            try:
                raw = json.loads(file.read_text())
                job = Job(**{k: v for k, v in raw.items() if k in names})
            except (OSError, ValueError, TypeError) as exc:
                log.warning("backup queue: %s is unreadable (%s); moved aside", file.name, exc)
                file.rename(file.with_suffix(".bad"))
                continue
            out.append(job)
        out.sort(key=lambda j: (j.created, j.offset))
        return out

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*.json"))
