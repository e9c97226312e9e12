"""Join a day's event clips into one MP4 without re-encoding (one file per day).

Clips are remuxed packet by packet in start order; each clip's timestamps are
shifted to follow the previous clip's last frame, so the file plays the day's
events back to back. A clip with another picture size than the first is
skipped (joining it would need re-encoding); a torn tail (a recovered clip)
ends that clip early. The output is written to ``OUT.part`` and renamed, so
an interrupted export never leaves a half file under the asked name.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from tqdm import tqdm

from common.catalogue import CatalogueReader, ClipRow
from services.record.naming import within

log = logging.getLogger(__name__)

US = Fraction(1, 1_000_000)


class ExportError(RuntimeError):
    """Nothing to export, or the output cannot be written."""


@dataclass(frozen=True)
class ExportResult:
    clips: int
    skipped: int
    frames: int
    duration: float
    size: int


def day_clips(cat: CatalogueReader, day: str, camera: str | None = None) -> list[ClipRow]:
    rows = cat.clips(day=day, camera=camera, limit=1_000_000)
    return sorted((c for c in rows if c.reason != "continuous" and c.state != "open"),
                  key=lambda c: c.start)


def export_day(cat: CatalogueReader, day: str, out: str | Path, storage: Path,
               camera: str | None = None, progress: bool = True) -> ExportResult:
    """Only clips inside ``storage`` are read: a symlink planted in the
    recordings folder would otherwise copy whatever it points at."""
    clips = [c for c in day_clips(cat, day, camera)
             if Path(c.path).exists() and within(Path(c.path), storage)]
    if not clips:
        who = f" of camera {camera}" if camera else ""
        raise ExportError(f"no event clips{who} on {day}")
    out = Path(out)
    part = out.with_name(out.name + ".part")
    frames = skipped = used = 0
    offset = 0  # µs: where the next clip starts in the output
    size = (None, None)
    bar = tqdm(total=sum(c.size for c in clips), unit="B", unit_scale=True,
               desc=f"export {day}", disable=not progress)
    try:
        with av.open(str(part), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
            ost = None
            for clip in clips:
                try:
                    with av.open(clip.path) as src:
                        ist = src.streams.video[0]
                        this = (ist.codec_context.width, ist.codec_context.height)
                        if ost is None:
                            ost = dst.add_stream_from_template(ist)
                            size = this
                        elif this != size:
                            log.warning("skipping %s: %dx%d, the export is %dx%d", clip.path,
                                        *this, *size)
                            skipped += 1
                            bar.update(clip.size)
                            continue
                        n, end = _copy(src, ist, dst, ost, offset, bar)
                except av.error.FFmpegError as exc:
                    log.warning("skipping %s: %s", clip.path, exc)
                    skipped += 1
                    continue
                if n:
                    used += 1
                    frames += n
                    offset = end
        os.replace(part, out)
    except (OSError, av.error.FFmpegError) as exc:
        part.unlink(missing_ok=True)
        raise ExportError(f"cannot write {out}: {exc}") from None
    finally:
        bar.close()
    if not used:
        out.unlink(missing_ok=True)
        raise ExportError(f"none of the {len(clips)} clip(s) on {day} could be read")
    return ExportResult(used, skipped, frames, offset / 1_000_000, out.stat().st_size)


def _copy(src: av.container.InputContainer, ist: av.VideoStream,
          dst: av.container.OutputContainer, ost: av.VideoStream, offset: int,
          bar: tqdm) -> tuple[int, int]:
    """Remux one clip; returns (packets written, µs where the next clip starts)."""
    first: int | None = None
    last = offset
    step = 0
    n = 0
    try:
        for pkt in src.demux(ist):
            if pkt.size == 0 or pkt.pts is None:
                continue
            us = int(pkt.pts * pkt.time_base / US)
            dur = int(pkt.duration * pkt.time_base / US) if pkt.duration else step
            step = dur or step
            if first is None:
                first = us
            pts = offset + us - first
            bar.update(pkt.size)
            pkt.pts = pkt.dts = pts
            pkt.time_base = US
            pkt.duration = step
            pkt.stream = ost
            dst.mux(pkt)
            last = pts + step
            n += 1
    except av.error.InvalidDataError as exc:
        log.warning("%s ends early: %s", src.name, exc)
    return n, last
