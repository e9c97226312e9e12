"""On start: finish what a crash or power cut left behind, never delete it.

* A clip the catalogue still lists as open was being written when the
  recorder died. Its torn tail (a fragment cut short) is truncated so every
  player accepts it, its figures are read back, and it is marked
  ``recovered`` (moved out of the staging folder first, when there is one).
* An MP4 under the storage (or staging) folder that the catalogue does not
  know (the recorder died between creating it and cataloguing it) is
  recovered the same way and catalogued.
* A catalogue row whose file is gone (deleted by hand) is dropped, so the
  catalogue agrees with the disk.

Files with no complete fragment hold no video and are removed. Only files
inside the storage (or staging) folder are touched: a symlink is left alone,
whatever it points at (``naming.within``).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

from common.catalogue import CatalogueWriter
from services.record.fmp4 import probe, truncate_to_complete
from services.record.naming import day_dir, within
from services.record.recorder import ClipNote

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<camera>[A-Za-z0-9_-]+?)-(?P<date>\d{8})-(?P<time>\d{6}|\d{4})"
                   r"(?:-\d+)?\.mp4$")


def _from_name(path: Path) -> tuple[str, float, str] | None:
    """(camera, start, reason) from a clip's file name."""
    m = _NAME.match(path.name)
    if not m:
        return None
    raw = m["date"] + m["time"].ljust(6, "0")
    start = time.mktime(time.strptime(raw, "%Y%m%d%H%M%S"))
    return m["camera"], start, ("continuous" if len(m["time"]) == 4 else "event")


def _finish(path: Path, start: float, storage: Path, staging: Path | None
            ) -> tuple[Path, float, int, int] | None:
    """Truncate, move out of staging, probe: (final path, duration, size, frames);
    None when there is nothing to keep, or ``path`` is not ours to touch."""
    if not (within(path, storage) or (staging is not None and within(path, staging))):
        log.warning("not recovering %s: a symlink, or outside the storage folder", path)
        return None
    old, new = truncate_to_complete(path)
    if old != new:
        log.warning("recovered %s: cut a torn tail of %d bytes", path, old - new)
    info = probe(path, decode=False)
    if info.frames == 0:  # ours (checked above): safe to remove
        log.warning("removing %s: no complete fragment (%s)", path, info.error)
        path.unlink(missing_ok=True)
        return None
    final = path
    if staging is not None and staging in path.parents:
        final = day_dir(storage, start) / path.name
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, final)
    return final, info.duration, final.stat().st_size, info.frames


def recover(catalogue: CatalogueWriter, storage: Path, staging: Path | None = None) -> list[ClipNote]:
    notes: list[ClipNote] = []
    for clip in catalogue.open_clips():
        path = Path(clip.path)
        if not path.exists():
            catalogue.delete_clip(clip.path)
            continue
        done = _finish(path, clip.start, storage, staging)
        if done is None:
            catalogue.delete_clip(clip.path)
            continue
        final, duration, size, frames = done
        catalogue.finish_clip(clip.path, end=clip.start + duration, duration=duration,
                              size=size, frames=frames, state="recovered", new_path=final)
        notes.append(ClipNote("finished", str(final), clip.start, clip.start + duration,
                              duration, size, clip.event_id, "recovered", frames))
    known = set(catalogue.all_clip_paths())
    roots = [storage] + ([staging] if staging is not None else [])
    for root in roots:
        for path in sorted(root.rglob("*.mp4")) if root.exists() else []:
            if str(path) in known:
                continue
            parsed = _from_name(path)
            if parsed is None:
                continue  # not ours
            camera, start, reason = parsed
            done = _finish(path, start, storage, staging)
            if done is None:
                continue
            final, duration, size, frames = done
            catalogue.add_clip(final, camera, start, reason, state="recovered")
            catalogue.finish_clip(final, end=start + duration, duration=duration, size=size,
                                  frames=frames, state="recovered")
            notes.append(ClipNote("finished", str(final), start, start + duration, duration,
                                  size, "", "recovered", frames))
    for clip_path in catalogue.all_clip_paths():
        if not Path(clip_path).exists():
            log.warning("catalogue lists %s but it is gone; dropping the row", clip_path)
            catalogue.delete_clip(clip_path)
    for snap in catalogue.all_snapshots():
        if not Path(snap.path).exists():
            catalogue.delete_snapshot(snap.path)
    return notes
