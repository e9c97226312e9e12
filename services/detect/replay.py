"""Offline replay: ``pisentry detect --replay PATH [--config FILE] --jsonl``.

Runs the same ``Detector`` as the live service over a video file or a folder
of images (name order) and prints one JSON line per input frame:

    {"frame": 0, "motion": false, "boxes": [], "event": null, "ms": 0.31}

``motion`` is the per-frame answer, "motion worth an event": the frames of a
confirmed event, its onset included (an event confirmed after
``frames_to_start`` frames began on the first of them, so lines leave
``frames_to_start - 1`` frames late), ``event`` is "start" or
"end" on the frames where an event starts or ends, ``ms`` the detector's
processing time (decoding excluded). A frame that cannot be decoded still
gets its line, with motion false and an ``error`` key, so line numbers stay
frame numbers.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import cv2
import numpy as np

from services.detect.events import OnsetBackfill
from services.detect.pipeline import Detector

if TYPE_CHECKING:
    from common.config import DetectConfig

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}


class ReplayError(Exception):
    """The input cannot be replayed at all (one line)."""


def iter_frames(path: Path, fps: float | None) -> tuple[float, Iterator[tuple[np.ndarray | None,
                                                                            str]]]:
    """(fps, frames): each frame is (BGR image or None, error text)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ReplayError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")

        def images() -> Iterator[tuple[np.ndarray | None, str]]:
            for f in files:
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                yield (img, "") if img is not None else (None, f"{f.name}: cannot decode")

        return fps or 15.0, images()
    if not path.is_file():
        raise ReplayError(f"{path}: no such file or folder")
    import av

    try:
        container = av.open(str(path))
        stream = container.streams.video[0]
    except (av.error.FFmpegError, IndexError) as exc:
        raise ReplayError(f"{path}: not a video file ({exc})") from None
    rate = fps or (float(stream.average_rate) if stream.average_rate else 15.0)

    def video() -> Iterator[tuple[np.ndarray | None, str]]:
        try:
            for packet in container.demux(stream):
                try:
                    for frame in packet.decode():
                        yield frame.to_ndarray(format="bgr24"), ""
                except av.error.FFmpegError as exc:  # a corrupt packet: drop it, go on
                    log.warning("%s: undecodable packet (%s)", path.name, exc)
        except av.error.FFmpegError as exc:
            log.warning("%s: stopped reading (%s)", path.name, exc)
        finally:
            container.close()

    return rate, video()


def replay(path: Path, config: DetectConfig, out: TextIO, jsonl: bool,
           fps: float | None = None) -> dict[str, float]:
    detector = Detector(config)
    onsets = OnsetBackfill(detector.start_frames)
    rate, frames = iter_frames(path, fps)
    count = moving = events = errors = 0
    times: list[float] = []

    def emit(ready: list[tuple[bool, object]]) -> None:
        nonlocal moving
        for motion, line in ready:
            assert isinstance(line, dict)
            line["motion"] = motion
            if not motion:
                line["boxes"] = []
            moving += motion
            if jsonl:
                out.write(json.dumps(line) + "\n")

    for index, (bgr, error) in enumerate(frames):
        count += 1
        if bgr is None:
            errors += 1
            line = {"frame": index, "motion": False, "boxes": [], "event": None, "ms": 0.0,
                    "error": error}
            emit(onsets.push(False, False, False, line))
            continue
        luma = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        res = detector.process(luma, index / rate, image=lambda b=bgr: b)
        phases = [c.phase for c in res.changes if c.phase != "update"]
        event = "start" if "start" in phases else (phases[0] if phases else None)
        events += event == "start"
        times.append(res.ms)
        line = {"frame": index, "motion": res.motion, "boxes": res.boxes, "event": event,
                "ms": round(res.ms, 3)}
        emit(onsets.push(res.motion, res.raw, res.onset, line))
    emit(onsets.flush())
    summary = {"frames": count, "motion_frames": moving, "events": events,
               "undecodable": errors, "fps": rate,
               "ms_median": round(statistics.median(times), 3) if times else 0.0}
    if not jsonl:
        out.write(json.dumps(summary) + "\n")
    return summary


def main(path: str, config: DetectConfig, jsonl: bool, fps: float | None) -> int:
    try:
        replay(Path(path), config, sys.stdout, jsonl, fps)
    except ReplayError as exc:
        print(f"pisentry detect: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a bad mask file, detector or model named in the config
        print(f"pisentry detect: {exc}", file=sys.stderr)
        return 2
    return 0
