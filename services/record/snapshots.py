"""Snapshots on disk: the event snapshot next to its clip, periodic ones, and
the optional motion-mask debug image.

Event snapshots come from detect (``snapshot/`` JPEG; an optional second
payload part is the motion mask). Periodic and manual snapshots are made here
from the newest keyframe of the pre-roll ring: one h264 keyframe decoded with
PyAV every few minutes, never a per-frame cost.
"""

from __future__ import annotations

import logging
import time
from fractions import Fraction
from pathlib import Path

import av

from common.catalogue import CatalogueWriter
from common.gopring import Packet
from services.record.naming import day_dir, unique

log = logging.getLogger(__name__)


def keyframe_jpeg(pkt: Packet, quality: int = 85) -> bytes:
    """Decode one keyframe (SPS/PPS in band) and encode it as JPEG, both with
    FFmpeg: the recorder then needs neither OpenCV nor NumPy (memory a Pi Zero
    lacks). ``quality`` 10-100 maps onto MJPEG's qscale 31-2."""
    decoder = av.CodecContext.create("h264", "r")
    frames = list(decoder.decode(av.Packet(pkt.data))) + list(decoder.decode(None))
    if not frames:
        raise ValueError("keyframe did not decode")
    frame = frames[0].reformat(format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = frame.width, frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    qscale = round(2 + (100 - max(10, min(100, quality))) * 29 / 90)
    encoder.qmin = encoder.qmax = qscale
    packets = list(encoder.encode(frame)) + list(encoder.encode(None))
    if not packets:
        raise ValueError("JPEG encoding failed")
    return bytes(packets[0])


class SnapshotStore:
    def __init__(self, storage: Path, catalogue: CatalogueWriter, camera: str) -> None:
        self.storage = storage
        self.catalogue = catalogue
        self.camera = camera

    def save(self, image: bytes | memoryview, ts: float, kind: str, event_id: str = "",
             width: int = 0, height: int = 0, next_to: Path | None = None,
             suffix: str = ".jpg") -> Path:
        """Write ``image`` and catalogue it. ``next_to``: the clip it belongs to
        (same folder and stem); otherwise named by camera, time and kind."""
        if next_to is not None:
            stem = next_to.stem if kind == "event" else f"{next_to.stem}-{kind}"
            path = unique(next_to.with_name(stem + suffix))
        else:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(ts))
            path = unique(day_dir(self.storage, ts) / f"{self.camera}-{stamp}-{kind}{suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(image)
        tmp.replace(path)  # readers never see half a JPEG
        self.catalogue.add_snapshot(path, self.camera, ts, kind, event_id, width, height,
                                    path.stat().st_size)
        return path
