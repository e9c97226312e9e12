"""Real h264 for the record tests, from the capture service's own encoder."""

from __future__ import annotations

import numpy as np

from common.gopring import Packet
from services.capture.encoder import H264Encoder


def _picture(i: int, width: int, height: int) -> np.ndarray:
    img = np.full((height, width, 3), 40, np.uint8)
    x = (i * 3) % width
    img[:, x:x + 8] = (200, 180, 160)
    img[0:8, 0:8] = i % 256  # a little change every frame
    return img


def make_gop_stream(seconds: float, fps: float = 10.0, width: int = 160, height: int = 120,
                    keyframe_interval: float = 1.0, t0: float = 1_700_000_000.0,
                    bitrate: int = 300_000, noise: bool = False) -> list[Packet]:
    """``seconds`` of moving-bar video as recorder packets; ``ts`` starts at ``t0``.
    ``noise``: random pixels, so the encoder spends the whole bitrate."""
    rng = np.random.default_rng(1)
    enc = H264Encoder(width, height, fps, keyframe_interval, bitrate)
    out: list[Packet] = []
    n = round(seconds * fps)
    step = int(1_000_000 / fps)
    aus: list[tuple[bytes, bool]] = []
    for i in range(n):
        img = _picture(i, width, height)
        if noise:
            img = rng.integers(0, 255, img.shape, np.uint8)
        aus.extend(enc.encode(img, i * step))
    aus.extend(enc.close())
    assert len(aus) == n, "zerolatency gives one access unit per frame"
    for i, (data, key) in enumerate(aus):
        out.append(Packet(data, i * step, t0 + i / fps, key, width, height, fps))
    return out


def repeat(packets: list[Packet], total_seconds: float, t0: float) -> list[Packet]:
    """A long stream made by replaying whole GOPs of ``packets`` with fresh times
    (cheap hours of video for retention and quarter-hour tests)."""
    fps = packets[0].fps
    step = int(1_000_000 / fps)
    n = round(total_seconds * fps)
    out = []
    for i in range(n):
        src = packets[i % len(packets)]
        out.append(Packet(src.data, i * step, t0 + i / fps, src.keyframe, src.width, src.height,
                          fps))
    return out


def joined_stream(seconds: float, join: int, preroll: int, earlier: bool = False,
                  fps: float = 10.0, width: int = 160, height: int = 120,
                  t0: float = 1_700_000_000.0) -> list[Packet]:
    """What capture sends for a camera that sends JPEGs when someone
    subscribes to h264 after frame ``join``: its encoder starts over on the
    pre-roll (frames ``join - preroll + 1`` .. ``join``, ``replay``, a
    keyframe first), then goes on live, the first live frame a keyframe.
    ``earlier``: another subscriber was there before, so live frames 0 ..
    ``join`` (another encoder) come first."""
    step = int(1_000_000 / fps)
    out: list[Packet] = []

    def add(enc: H264Encoder, i: int, replay: bool, key: bool = False) -> None:
        (data, keyframe), = enc.encode(_picture(i, width, height), i * step, keyframe=key)
        out.append(Packet(data, i * step, t0 + i / fps, keyframe, width, height, fps, replay))

    if earlier:
        first = H264Encoder(width, height, fps)
        for i in range(join + 1):
            add(first, i, False)
    enc = H264Encoder(width, height, fps)
    for i in range(join - preroll + 1, join + 1):
        add(enc, i, True)
    for i in range(join + 1, round(seconds * fps)):
        add(enc, i, False, key=i == join + 1)
    return out
