"""Where clips and snapshots go, and when continuous clips are cut.

Layout: ``<storage>/YYYY/MM/DD/<camera>-<stamp><suffix>``, local time, with
``stamp`` ``YYYYMMDD-hhmmss`` for event and edge clips and
``YYYYMMDD-hhmm`` for continuous clips, so both kinds share one tree without
clashing. A name that is taken (two events in one second, a restart within a
minute) gets ``-1``, ``-2`` ... before the suffix.
"""

from __future__ import annotations

import time
from pathlib import Path

EVENT_STAMP = "%Y%m%d-%H%M%S"
CONTINUOUS_STAMP = "%Y%m%d-%H%M"


def within(path: Path, root: Path) -> bool:
    """``path`` is one of our files: not a symlink, and inside ``root`` once
    every link among its folders is followed (``root`` itself may be a link,
    to a USB disk). Recovery, retention and export touch nothing else, so a
    link planted in the recordings folder cannot point them at a file
    elsewhere."""
    try:
        return not path.is_symlink() and path.resolve().is_relative_to(root.resolve())
    except (OSError, ValueError, RuntimeError):  # a loop, a NUL
        return False


def day_dir(root: Path, ts: float) -> Path:
    return root / time.strftime("%Y/%m/%d", time.localtime(ts))


def unique(path: Path, taken: set[str] | None = None) -> Path:
    """``path`` or the first ``stem-N`` variant that neither exists nor is in ``taken``."""
    candidate = path
    n = 0
    while candidate.exists() or (taken is not None and str(candidate) in taken):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def clip_path(root: Path, camera: str, ts: float, continuous: bool = False,
              suffix: str = ".mp4", taken: set[str] | None = None) -> Path:
    stamp = time.strftime(CONTINUOUS_STAMP if continuous else EVENT_STAMP, time.localtime(ts))
    return unique(day_dir(root, ts) / f"{camera}-{stamp}{suffix}", taken)


def next_boundary(ts: float, minutes: int = 15) -> float:
    """The first local-time multiple of ``minutes`` past the hour strictly after ``ts``
    (:00, :15, :30, :45 for 15). Local time, so zones with half-hour offsets line up."""
    lt = time.localtime(ts)
    into = (lt.tm_min % minutes) * 60 + lt.tm_sec + (ts - int(ts))
    return ts - into + minutes * 60
